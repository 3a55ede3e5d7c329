"""`lnvps admin grant|revoke|list` on SQLite and MariaDB: the command's `main(argv)` in this
process for the behaviour (a fresh interpreter costs ~2 s a call), and once as a real
`python -m lnvps.cli` subprocess for what only a process shows (exit status, stdout/stderr)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from sqlalchemy import text

from adapters.mysql.engine import create_engine
from domain.nip19 import npub
from lnvps.cli import main
from tests.dbtest import MYSQL_HEAD, SqliteTemplate, drop_mysql_database

REPO = Path(__file__).resolve().parents[2]
KEY = bytes.fromhex("3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d")


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, _sqlite_template: SqliteTemplate
) -> Iterator[str]:
    """A database at head: a copy of this process's migrated template (`tests.dbtest`)."""
    if request.param == "sqlite":
        yield asyncio.run(_sqlite_template.copy_to(tmp_path / "admin.db"))
        return
    name, url = asyncio.run(MYSQL_HEAD.copy())
    try:
        yield url
    finally:
        asyncio.run(drop_mysql_database(name))


@attrs.frozen
class Run:
    """What one `lnvps` command left: its exit status and its output."""

    returncode: int
    stdout: str
    stderr: str


Lnvps = Callable[..., Run]


@pytest.fixture
def lnvps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Lnvps]:
    """`lnvps ARGS…` as `main(argv)` in this process: in `tmp_path`, without the test run's
    LNVPS_* variables (as the subprocess gets them), the loggers it sets restored afterwards."""
    for name in [k for k in os.environ if k.startswith("LNVPS_")]:
        monkeypatch.delenv(name)
    # a trial's config: on MariaDB the dev tools run only when asked for (`lnvps.dev_mode`)
    trial = tmp_path / "trial.yaml"
    trial.write_text(f"dev: {{enabled: true, state-dir: {tmp_path}}}\n")
    monkeypatch.setenv("LNVPS_CONFIG", str(trial))
    monkeypatch.chdir(tmp_path)
    root, alembic = logging.getLogger(), logging.getLogger("alembic")
    handlers, level, alembic_level = root.handlers[:], root.level, alembic.level

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    try:
        yield run
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        alembic.setLevel(alembic_level)


def lnvps_process(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LNVPS_")}
    return subprocess.run(
        [sys.executable, "-m", "lnvps.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=False,
    )


async def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in (await conn.execute(text(sql))).all()]
    finally:
        await engine.dispose()


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    return asyncio.run(_rows(url, sql))


ASSIGNMENTS = (
    "SELECT u.pubkey, r.name, a.expires_at IS NULL FROM admin_role_assignments a "
    "JOIN users u ON u.id = a.user_id JOIN admin_roles r ON r.id = a.role_id ORDER BY a.id"
)


def test_grant_creates_the_user_is_idempotent_and_revoke_undoes_it(
    db_url: str, lnvps: Lnvps
) -> None:
    first = lnvps("admin", "grant", npub(KEY), "super_admin", "--db", db_url)
    assert first.returncode == 0, first.stderr
    assert "super_admin granted" in first.stdout
    # the hex form names the same user; granting again changes nothing but the expiry
    again = lnvps(
        "--db",
        db_url,
        "admin",
        "grant",
        KEY.hex(),
        "super_admin",
        "--expires",
        "2031-01-02T03:04:05Z",
    )
    assert again.returncode == 0, again.stderr
    assert "already held" in again.stdout
    assert rows(db_url, "SELECT COUNT(*) FROM users") == [(1,)]
    assert rows(db_url, ASSIGNMENTS) == [(KEY, "super_admin", 0)]

    listed = lnvps("admin", "list", "--db", db_url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        f"{KEY.hex()}  {npub(KEY)}  super_admin  "
        f"{listed.stdout.split('super_admin  ')[1].split('  expires')[0]}  "
        "expires 2031-01-02T03:04:05+00:00"
    ]

    for _ in range(2):
        revoked = lnvps("admin", "revoke", npub(KEY), "super_admin", "--db", db_url)
        assert revoked.returncode == 0, revoked.stderr
    assert "was not held" in revoked.stdout
    assert rows(db_url, ASSIGNMENTS) == []
    assert lnvps("admin", "list", "--db", db_url).stdout == ""


def test_unknown_roles_and_bad_keys_are_refused_in_one_line_and_change_nothing(
    db_url: str, lnvps: Lnvps
) -> None:
    other = "ab" * 32
    for args, fragment in (
        (["grant", other, "overlord"], "unknown role 'overlord' (roles: admin, "),
        (["revoke", other, "overlord"], "unknown role 'overlord'"),
        (["grant", "npub1notakey", "admin"], "not a Nostr public key"),
        (["grant", other, "admin", "--expires", "someday"], "not a time or a duration"),
    ):
        run = lnvps("admin", *args, "--db", db_url)
        assert run.returncode == 2, run
        assert fragment in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "Traceback" not in run.stderr
    assert rows(db_url, "SELECT COUNT(*) FROM users") == [(0,)]
    assert rows(db_url, ASSIGNMENTS) == []


def test_the_command_as_a_process_exits_with_its_status_and_prints_one_line(
    tmp_path: Path, _sqlite_template: SqliteTemplate
) -> None:
    """The real `python -m lnvps.cli`: status 0 and the result on stdout for a grant, status 2
    and one line on stderr (no traceback, no log noise) for a refusal, nothing written."""
    url = asyncio.run(_sqlite_template.copy_to(tmp_path / "process.db"))
    refused = lnvps_process(tmp_path, "admin", "grant", "ab" * 32, "overlord", "--db", url)
    assert refused.returncode == 2, refused
    assert refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "unknown role 'overlord'" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert rows(url, "SELECT COUNT(*) FROM users") == [(0,)]

    granted = lnvps_process(tmp_path, "admin", "grant", npub(KEY), "super_admin", "--db", url)
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout == f"super_admin granted for {npub(KEY)}\n"
    assert rows(url, ASSIGNMENTS) == [(KEY, "super_admin", 1)]


def test_settlement_problems_lists_what_the_intake_could_not_complete(
    db_url: str, lnvps: Lnvps
) -> None:
    assert lnvps("admin", "settlement-problems", "--db", db_url).stdout == ""
    engine_rows = (
        "INSERT INTO settlement_problem (payment_id, settle_index, amount_paid_msat, error, "
        "message, created) VALUES "
    )
    asyncio.run(
        _write(
            db_url,
            engine_rows + "(:p, 7, 5000, 'ShortSettlement', 'too little', '2026-02-01 10:00:00')",
            p=b"\xab" * 32,
        )
    )
    listed = lnvps("admin", "settlement-problems", "--db", db_url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        f"2026-02-01T10:00:00+00:00  {'ab' * 32}  settle index 7  5000 msat  payment gone  "
        "ShortSettlement: too little"
    ]


async def _write(url: str, sql: str, **params: object) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql), params)
    finally:
        await engine.dispose()
