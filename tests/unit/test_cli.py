"""The `lnvps` command line: db upgrade/current/downgrade and the legacy backfill."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.mysql.migrations import HEAD, REVISIONS
from lnvps.cli import build_parser, main


def test_db_upgrade_then_current_reports_the_head_revision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "cli.db")
    assert main(["--db", db, "db", "upgrade"]) == 0
    assert f"applied {len(REVISIONS)} revision(s)" in capsys.readouterr().out
    assert main(["--db", db, "db", "current"]) == 0
    assert capsys.readouterr().out.strip() == HEAD
    assert main(["--db", db, "db", "upgrade"]) == 0
    assert "applied 0 revision(s)" in capsys.readouterr().out


def test_db_downgrade_goes_back_to_the_legacy_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "down.db")
    assert main(["--db", db, "db", "upgrade"]) == 0
    assert main(["--db", db, "db", "downgrade", "legacy_20260225000001"]) == 0
    columns = {row[1] for row in sqlite3.connect(db).execute("PRAGMA table_info(vm)")}
    assert "subscription_line_item_id" not in columns
    assert "expires" in columns


def test_the_database_url_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "env.db"
    monkeypatch.setenv("LNVPS_DB", str(db))
    assert main(["db", "upgrade"]) == 0
    assert db.exists()


def test_an_unknown_database_shape_is_refused_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "alien.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE something_else (id INTEGER PRIMARY KEY)")
    assert main(["--db", str(db), "db", "upgrade"]) == 3
    assert "refusing this database" in capsys.readouterr().err
    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert tables == {"something_else"}


def test_backfill_dry_run_on_a_fresh_database_reports_nothing_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "bf.db")
    assert main(["--db", db, "db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["--db", db, "migrate-legacy-billing", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "DRY RUN" in out and "0 errors" in out
    sized = ["migrate-legacy-billing", "--dry-run", "--vm-batch", "7", "--payment-batch", "9"]
    assert main(["--db", db, *sized]) == 0
    for bad in ("0", "-3", "x"):
        with pytest.raises(SystemExit) as refused:
            build_parser().parse_args(["migrate-legacy-billing", "--payment-batch", bad])
        assert refused.value.code == 2


async def _dev_invoice(state_dir: Path) -> bytes:
    from adapters.lightning.dev import DevLightningNode

    node = DevLightningNode(state_dir / "lnvps-dev-lightning.json")
    invoice = await node.create_invoice(10_000, "test", 600)
    return invoice.payment_hash


def _dev_config(tmp_path: Path) -> str:
    cfg = tmp_path / "dev.yaml"
    cfg.write_text(f"db: sqlite:///{tmp_path}/dev.db\ndev:\n  state-dir: {tmp_path}\n")
    return str(cfg)


def test_dev_pay_settles_a_dev_invoice_once_and_refuses_unknown_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    payment_hash = asyncio.run(_dev_invoice(tmp_path))
    cfg = _dev_config(tmp_path)
    assert main(["--config", cfg, "dev", "pay", payment_hash.hex()]) == 0
    assert "settle index 1" in capsys.readouterr().out
    assert main(["--config", cfg, "dev", "pay", "00" * 32]) == 1
    assert main(["--config", cfg, "dev", "pay", "not-an-id"]) == 1


def test_dev_advance_clock_moves_the_offset_forward(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import timedelta

    from adapters.clock.offset import OffsetClock

    cfg = _dev_config(tmp_path)
    assert main(["--config", cfg, "dev", "advance-clock", "2d"]) == 0
    assert main(["--config", cfg, "dev", "advance-clock", "1h"]) == 0
    assert OffsetClock(tmp_path / "lnvps-dev-clock.json").offset() == timedelta(days=2, hours=1)
    assert main(["--config", cfg, "dev", "advance-clock", "soon"]) == 1


def test_dev_tools_are_refused_outside_the_embedded_default(tmp_path: Path) -> None:
    cfg = tmp_path / "prod.yaml"
    macaroon = tmp_path / "m"
    macaroon.write_bytes(b"x")
    cfg.write_text(f"lightning:\n  lnd:\n    url: https://lnd:8080\n    macaroon: {macaroon}\n")
    assert main(["--config", str(cfg), "dev", "advance-clock", "1d"]) == 2


def test_dev_auth_prints_a_header_the_server_accepts_and_reuses_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time
    from datetime import UTC, datetime

    from tests.nostr_signing import verify_nip98

    cfg = _dev_config(tmp_path)
    url = "http://127.0.0.1:8000/api/v1/account"
    assert main(["--config", cfg, "dev", "auth", "GET", url]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["--config", cfg, "dev", "auth", "GET", url]) == 0
    second = capsys.readouterr().out.strip()
    now = datetime.fromtimestamp(int(time.time()), UTC)
    assert verify_nip98(first, "GET", "/api/v1/account", now, None) == verify_nip98(
        second, "GET", "/api/v1/account", now, None
    )
    assert oct((tmp_path / "lnvps-dev-nostr.key").stat().st_mode & 0o777) == "0o600"


def test_split_modes_need_redis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _dev_config(tmp_path)
    assert main(["--config", cfg, "serve", "--mode", "worker"]) == 2
    assert "needs `redis`" in capsys.readouterr().err


def test_global_options_work_after_the_subcommand_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    after = str(tmp_path / "after.db")
    assert main(["db", "upgrade", "--db", after]) == 0
    assert main(["db", "current", "--db", after]) == 0
    assert capsys.readouterr().out.strip().endswith(HEAD)
    cfg = _dev_config(tmp_path)
    assert main(["dev", "advance-clock", "1d", "--config", cfg]) == 0
    # given twice, the later (subcommand) value wins; the earlier one is not lost otherwise
    assert main(["--db", str(tmp_path / "x.db"), "db", "upgrade", "--db", after]) == 0
    assert "applied 0 revision(s)" in capsys.readouterr().out
    assert not (tmp_path / "x.db").exists()


def test_serve_takes_admin_listen_and_db_after_the_subcommand() -> None:
    from lnvps.cli import build_parser

    args = build_parser().parse_args(
        ["serve", "--db", "mysql://u@h/d", "--admin-listen", "127.0.0.1:9", "--listen", ":1"]
    )
    assert (args.db, args.admin_listen, args.listen) == ("mysql://u@h/d", "127.0.0.1:9", ":1")
    assert build_parser().parse_args(["--db", "a.db", "serve"]).db == "a.db"


def test_dev_reset_clock_returns_to_real_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import timedelta

    from adapters.clock.offset import OffsetClock

    cfg = _dev_config(tmp_path)
    assert main(["--config", cfg, "dev", "advance-clock", "3d"]) == 0
    assert main(["--config", cfg, "dev", "reset-clock"]) == 0
    assert OffsetClock(tmp_path / "lnvps-dev-clock.json").offset() == timedelta(0)
    assert main(["--config", cfg, "dev", "reset-clock"]) == 0  # already real time: fine
    assert "back to real time" in capsys.readouterr().out


def test_dev_pubkey_is_the_key_dev_auth_signs_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import base64
    import json

    cfg = _dev_config(tmp_path)
    assert main(["--config", cfg, "dev", "pubkey"]) == 0
    pubkey = capsys.readouterr().out.strip()
    url = "http://127.0.0.1:8000/api/v1/vm/1/renew?method=lightning&intervals=3"
    assert main(["--config", cfg, "dev", "auth", "GET", url]) == 0
    event = json.loads(base64.b64decode(capsys.readouterr().out.strip().split(" ", 1)[1]))
    assert event["pubkey"] == pubkey
    # the full URL as given, query string included (NIP-98 `u` tag, D26)
    assert ["u", url] in event["tags"] and ["method", "GET"] in event["tags"]


def test_a_busy_port_gives_one_clear_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    cfg = _dev_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for flag in ("--listen", "--admin-listen"):
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "lnvps.cli",
                    "serve",
                    "--config",
                    cfg,
                    "--listen",
                    "127.0.0.1:0",
                    flag,
                    f"127.0.0.1:{port}",
                ],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env={**os.environ, "PYTHONPATH": str(repo)},
            )
            assert run.returncode == 1, run
            lines = [ln for ln in run.stderr.splitlines() if ln.startswith("lnvps:")]
            assert lines == [f"lnvps: cannot listen on 127.0.0.1:{port}: Address already in use"], (
                run.stderr
            )
            assert "Traceback" not in run.stderr


def test_gitignore_covers_every_dev_state_file() -> None:
    """The names come from the code, so a renamed state file cannot slip out of .gitignore."""
    import subprocess

    from lnvps.cli import DEV_NOSTR_KEY_FILE
    from lnvps.dev_state import DEV_CLOCK_FILE, DEV_LIGHTNING_FILE, DUMMY_HOST_FILE
    from lnvps.settings import DEFAULT_DB_URL

    repo = Path(__file__).resolve().parents[2]
    names = [
        DEV_NOSTR_KEY_FILE,
        DEV_CLOCK_FILE,
        DEV_LIGHTNING_FILE,
        DUMMY_HOST_FILE,
        DEFAULT_DB_URL.removeprefix("sqlite:///"),
        "lnvps.db-wal",
    ]
    run = subprocess.run(
        ["git", "check-ignore", "--no-index", *names],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert sorted(run.stdout.split()) == sorted(names), run


def test_production_without_an_encryption_key_refuses_to_serve_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """D28: a config with a real Lightning node and no `encryption.key-file` does not start
    (and writes nothing: the database file is never created)."""
    macaroon = tmp_path / "admin.macaroon"
    macaroon.write_bytes(b"\x01")
    config = tmp_path / "prod.yaml"
    config.write_text(
        f"db: sqlite:///{tmp_path}/prod.db\nlisten: 127.0.0.1:1\nadmin-listen: ''\n"
        f"lightning:\n  lnd:\n    url: http://127.0.0.1:1\n    macaroon: {macaroon}\n"
    )
    assert main(["--config", str(config), "serve"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "lnvps: encryption.key-file is required outside dev mode (secrets are stored encrypted)\n"
    )
    assert not (tmp_path / "prod.db").exists()
    config.write_text(config.read_text() + f"encryption: {{key-file: {tmp_path}/missing}}\n")
    assert main(["--config", str(config), "serve"]) == 2
    assert capsys.readouterr().err == (
        f"lnvps: encryption key file {tmp_path}/missing does not exist\n"
    )


def test_the_dev_commands_start_without_the_servers_modules() -> None:
    """`lnvps dev auth` runs before every request of the README's walk: importing the command
    line loads no database, HTTP or container module (2 s of imports; 0.2 s without them)."""
    script = (
        "import sys, lnvps.cli\n"
        "heavy = ('sqlalchemy', 'aiohttp', 'alembic', 'redis', 'dependency_injector',"
        " 'lnvps.container', 'lnvps.commands')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
