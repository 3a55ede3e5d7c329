"""The `lnvps` command line: db upgrade/current/downgrade and the legacy backfill."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.cli import main


def test_db_upgrade_then_current_reports_the_head_revision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "cli.db")
    assert main(["--db", db, "db", "upgrade"]) == 0
    assert "applied 4 revision(s)" in capsys.readouterr().out
    assert main(["--db", db, "db", "current"]) == 0
    assert capsys.readouterr().out.strip() == "lnvps_lifecycle_and_idempotency"
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
