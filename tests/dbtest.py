"""Throw-away test databases: SQLite files and uniquely named MariaDB databases."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from adapters.mysql.engine import create_engine, normalize_db_url
from adapters.mysql.schema_upgrade import upgrade_database

DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/test"
DATABASE_PREFIX = "lnvps_t_"

_mysql_error: list[str] = []  # filled once the server was found unreachable


def mysql_server_url() -> str:
    """The server to create test databases on (`LNVPS_TEST_MYSQL_URL`)."""
    return os.environ.get("LNVPS_TEST_MYSQL_URL", DEFAULT_MYSQL_URL)


def mysql_required() -> bool:
    return os.environ.get("LNVPS_REQUIRE_MYSQL") == "1"


def sqlite_url_for(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _skip_or_fail(reason: str) -> None:
    if mysql_required():
        pytest.fail(f"LNVPS_REQUIRE_MYSQL=1 but {reason}")
    pytest.skip(reason)


async def create_mysql_database() -> tuple[str, str]:
    """Create `lnvps_t_<random>` on the test server; returns (name, url). Skips if unreachable."""
    if _mysql_error:
        _skip_or_fail(_mysql_error[0])
    name = DATABASE_PREFIX + secrets.token_hex(6)
    server = normalize_db_url(mysql_server_url())
    engine = create_engine(server, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except Exception as error:  # server down, bad credentials …
        _mysql_error.append(f"MariaDB/MySQL at {mysql_server_url()} unreachable: {error}")
        _skip_or_fail(_mysql_error[0])
    finally:
        await engine.dispose()
    url = make_url(mysql_server_url()).set(database=name)
    return name, url.render_as_string(hide_password=False)


async def drop_mysql_database(name: str) -> None:
    engine = create_engine(mysql_server_url(), pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        await engine.dispose()


class SqliteTemplate:
    """A SQLite file migrated to head once per session, copied for every test that needs one."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "head-template.db"
        self.ready = False

    async def copy_to(self, target: Path) -> str:
        if not self.ready:
            await upgrade_database(sqlite_url_for(self.path))
            self.ready = True
        shutil.copyfile(self.path, target)
        return sqlite_url_for(target)
