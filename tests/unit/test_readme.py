"""The README cannot drift: its `lnvps` commands parse, and the e2e walk calls its curl paths."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from lnvps.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
SHELL_BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
#: what invokes the CLI in the README: `$L` (set to .venv/bin/lnvps), the venv path, `lnvps`
CLI = re.compile(r"(?:\$L|\.venv/bin/lnvps|(?<![\w/-])lnvps)\s+([a-z][^\n`|;&)]*)")


def _shell_lines() -> list[str]:
    joined = "\n".join(SHELL_BLOCKS).replace("\\\n", " ")
    return [line.split("#", 1)[0] for line in joined.splitlines()]


def _cli_commands() -> list[str]:
    found: list[str] = []
    for line in _shell_lines():
        found += [m.strip() for m in CLI.findall(line)]
    table = re.findall(r"^\| `(lnvps [^|]*?)`", README, flags=re.M)
    inline = re.findall(r"`(lnvps [a-z][^`]*)`", README)
    return found + [t.split("`, `")[0][6:] for t in table] + [i[6:] for i in inline]


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found = action.choices.get(name)
            return found if isinstance(found, argparse.ArgumentParser) else None
    return None


def _check(command: str) -> None:
    """Each word names a subcommand in turn; each `--option` exists where it is used."""
    unquoted = command.replace('"', " ").replace("'", " ")
    words = shlex.split(re.sub(r"<[^>]*>|\$\([^)]*\)|\[|\]", " X ", unquoted))
    parser = build_parser()
    options = {o for a in parser._actions for o in a.option_strings}
    for word in words:
        if word.startswith("--"):
            assert word.split("=")[0] in options, f"README: unknown option {word} in {command!r}"
            continue
        child = _subparser(parser, word)
        if child is not None:
            parser = child
            options = {o for a in parser._actions for o in a.option_strings}
        elif _subparser(parser, "x-never") is None and any(
            isinstance(a, argparse._SubParsersAction) for a in parser._actions
        ):
            pytest.fail(f"README: {word!r} is not a subcommand in {command!r}")


def test_the_readme_has_cli_commands_to_check() -> None:
    commands = _cli_commands()
    assert len(commands) > 15
    assert any(c.startswith("admin grant") for c in commands)


@pytest.mark.parametrize("command", sorted(set(_cli_commands())))
def test_every_readme_command_exists(command: str) -> None:
    _check(command)


def test_a_made_up_command_would_be_caught() -> None:
    with pytest.raises(pytest.fail.Exception):
        _check("dev teleport 1d")
    with pytest.raises(AssertionError):
        _check("db upgrade --dbb x")


def _normal(path: str) -> str:
    path = re.sub(r"\{[a-z_\[\]'\"]+\}", "{}", path.split("?")[0])
    return re.sub(r"/\d+(?=/|$)", "/{}", path).rstrip("/")


def test_the_e2e_walk_calls_every_readme_curl_path() -> None:
    curl_paths = {
        _normal(m)
        for line in _shell_lines()
        if "curl" in line
        for m in re.findall(r"\$(?:API|ADMIN)(/api/[^\s\"')]*)", re.sub(r"<[^>]*>", "{}", line))
    }
    assert "/api/v1/vm/{}/renew" in curl_paths and "/api/admin/v1/users" in curl_paths
    walk = (REPO / "tests/e2e/test_pulumi_walk.py").read_text()
    walked = {_normal(p) for p in re.findall(r"\"(/api/[^\"\s]*)\"", walk)}
    assert curl_paths <= walked, curl_paths - walked


def test_every_readme_python_module_and_script_exists() -> None:
    import importlib.util

    modules = re.findall(r"python -m ([\w.]+)", "\n".join(_shell_lines()))
    assert "bench.backfill" in modules
    for module in modules:
        if module in ("venv", "pip"):
            continue
        assert importlib.util.find_spec(module) is not None, module
    for script in re.findall(r"bash ([\w./-]+)", README):
        assert (REPO / script).is_file(), script
