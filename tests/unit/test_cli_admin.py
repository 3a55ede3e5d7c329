"""`lnvps admin grant|revoke|list` run as a subprocess on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.mysql.engine import create_engine
from adapters.mysql.schema_upgrade import upgrade_database
from domain.nip19 import npub
from tests.dbtest import create_mysql_database, drop_mysql_database, sqlite_url_for

REPO = Path(__file__).resolve().parents[2]
KEY = bytes.fromhex("3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d")


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = sqlite_url_for(tmp_path / "admin.db")
        asyncio.run(upgrade_database(url))
        yield url
        return
    name, url = asyncio.run(create_mysql_database())
    try:
        asyncio.run(upgrade_database(url))
        yield url
    finally:
        asyncio.run(drop_mysql_database(name))


def lnvps(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
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
    db_url: str, tmp_path: Path
) -> None:
    first = lnvps(tmp_path, "admin", "grant", npub(KEY), "super_admin", "--db", db_url)
    assert first.returncode == 0, first.stderr
    assert "super_admin granted" in first.stdout
    # the hex form names the same user; granting again changes nothing but the expiry
    again = lnvps(
        tmp_path,
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

    listed = lnvps(tmp_path, "admin", "list", "--db", db_url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        f"{KEY.hex()}  {npub(KEY)}  super_admin  "
        f"{listed.stdout.split('super_admin  ')[1].split('  expires')[0]}  "
        "expires 2031-01-02T03:04:05+00:00"
    ]

    for _ in range(2):
        revoked = lnvps(tmp_path, "admin", "revoke", npub(KEY), "super_admin", "--db", db_url)
        assert revoked.returncode == 0, revoked.stderr
    assert "was not held" in revoked.stdout
    assert rows(db_url, ASSIGNMENTS) == []
    assert lnvps(tmp_path, "admin", "list", "--db", db_url).stdout == ""


def test_unknown_roles_and_bad_keys_are_refused_in_one_line_and_change_nothing(
    db_url: str, tmp_path: Path
) -> None:
    other = "ab" * 32
    for args, fragment in (
        (["grant", other, "overlord"], "unknown role 'overlord' (roles: admin, "),
        (["revoke", other, "overlord"], "unknown role 'overlord'"),
        (["grant", "npub1notakey", "admin"], "not a Nostr public key"),
        (["grant", other, "admin", "--expires", "someday"], "not a time or a duration"),
    ):
        run = lnvps(tmp_path, "admin", *args, "--db", db_url)
        assert run.returncode == 2, run
        assert fragment in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "Traceback" not in run.stderr
    assert rows(db_url, "SELECT COUNT(*) FROM users") == [(0,)]
    assert rows(db_url, ASSIGNMENTS) == []
