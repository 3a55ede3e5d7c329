"""Throw-away test databases: SQLite files and uniquely named MariaDB databases."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from pathlib import Path

import attrs
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.mysql.engine import create_engine, normalize_db_url, url_is_mysql
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


async def copy_database(source: str, target: str) -> None:
    """Make the empty database `target` a copy of `source`: same tables (keys, foreign keys,
    AUTO_INCREMENT counters), same rows and ids. Cheaper than a second build.

    SQLite: the file is copied. MariaDB: each table is created from its `SHOW CREATE TABLE`
    and filled by `INSERT … SELECT` on the server, foreign key checks off meanwhile; a view,
    trigger or routine (none at head) would not be copied, so their presence fails.
    """
    if not url_is_mysql(source):
        src, dst = make_url(source).database, make_url(target).database
        assert src and dst
        await asyncio.to_thread(shutil.copyfile, src, dst)
        return
    from_db, to_db = make_url(source).database, make_url(target).database
    engine = create_engine(target, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            others = await conn.execute(
                text(
                    "SELECT 'view' FROM information_schema.TABLES WHERE TABLE_SCHEMA = :db "
                    "AND TABLE_TYPE <> 'BASE TABLE' UNION ALL SELECT 'trigger' FROM "
                    "information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = :db UNION ALL SELECT "
                    "'routine' FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = :db"
                ),
                {"db": from_db},
            )
            assert not others.all(), f"{from_db} holds more than tables"
            tables = (
                await conn.execute(
                    text(
                        "SELECT TABLE_NAME FROM information_schema.TABLES "
                        "WHERE TABLE_SCHEMA = :db ORDER BY TABLE_NAME"
                    ),
                    {"db": from_db},
                )
            ).scalars()
            await conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
            for table in list(tables):
                shown = await conn.execute(text(f"SHOW CREATE TABLE `{from_db}`.`{table}`"))
                await conn.execute(text(shown.one()[1]))
                await conn.execute(
                    text(f"INSERT INTO `{to_db}`.`{table}` SELECT * FROM `{from_db}`.`{table}`")
                )
            await conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
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


@attrs.frozen
class _Schema:
    """What a database migrated to head is made of: each table's DDL, and the tables that
    hold rows (the migrations' seed rows, `alembic_version` among them)."""

    name: str
    ddl: tuple[str, ...]
    with_rows: tuple[str, ...]
    #: each base table's AUTO_INCREMENT counter (None: the table has none)
    counters: tuple[tuple[str, int | None], ...]


#: what a head database must not hold for a copy of its tables to equal it
_NOT_COPIED = (
    ("views", "SELECT COUNT(*) FROM information_schema.views WHERE table_schema = :db"),
    ("triggers", "SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = :db"),
    ("routines", "SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = :db"),
    ("events", "SELECT COUNT(*) FROM information_schema.events WHERE event_schema = :db"),
    (
        "sequences",
        "SELECT COUNT(*) FROM information_schema.tables"
        " WHERE table_schema = :db AND table_type = 'SEQUENCE'",
    ),
)


class MysqlTemplate:
    """A MariaDB database migrated to head once per test process; each test database that
    needs the head schema gets a copy of its tables and rows instead of its own migration
    (~0.15 s instead of ~0.6 s, and 2-3x that on a loaded machine, for ~100 databases a run).

    The copy is made from `SHOW CREATE TABLE` (foreign keys, indexes, defaults, the
    auto-increment counters) with foreign-key checks off, then the seed rows. A head that
    holds anything else (a view, trigger, routine, event or sequence) is refused, so the
    copy cannot silently differ; `tests/contract/test_mysql_template.py` compares a copy with
    a migrated database, table by table and row by row.
    """

    def __init__(self) -> None:
        self._schema: _Schema | None = None
        self._shared: tuple[str, str] | None = None

    async def _head(self) -> _Schema:
        if self._schema is None:
            name, url = await create_mysql_database()
            await upgrade_database(url)
            self._schema = await _read_schema(name)
        return self._schema

    async def copy(self) -> tuple[str, str]:
        """A new `lnvps_t_<random>` database at head: (name, url). Skips if unreachable."""
        schema = await self._head()
        name, url = await create_mysql_database()
        engine = create_engine(mysql_server_url(), pool_size=1, max_overflow=0)
        try:
            async with engine.begin() as conn:
                await conn.exec_driver_sql(f"USE `{name}`")
                await conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
                for ddl in schema.ddl:
                    await conn.exec_driver_sql(ddl.replace("%", "%%"))
                for table in schema.with_rows:
                    await conn.exec_driver_sql(
                        f"INSERT INTO `{table}` SELECT * FROM `{schema.name}`.`{table}`"
                    )
                await conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
        finally:
            await engine.dispose()
        return name, url

    async def shared(self) -> tuple[str, str]:
        """This process's one database at head lent to test module after test module:
        (name, url). Made by `copy` at the first call; at each later call brought back to a
        fresh copy's state (`_restore`), instead of a new database per module (~40 CREATE
        TABLE and a DROP DATABASE, ~1 s a module on a loaded machine). Dropped by `drop`."""
        if self._shared is not None and not await self._restore(self._shared[0]):
            await drop_mysql_database(self._shared[0])
            self._shared = None
        if self._shared is None:
            self._shared = await self.copy()
        return self._shared

    async def _restore(self, name: str) -> bool:
        """Make `name` hold what a fresh copy holds: the seed rows only, each AUTO_INCREMENT
        counter at the head's value (a module's first ids are the ones a fresh copy gives).

        Only the tables that differ are touched: those with a row and the seeded ones are
        truncated (rows and counter) and the seeded ones refilled from the template; then a
        counter that differs from the head's is set to it (an insert moves it even when
        rolled back or deleted, so an empty table may have one that moved).
        False (the caller makes a new copy) when the set of tables is not the head's: a
        module changed the schema."""
        schema = await self._head()
        expected = dict(schema.counters)
        engine = create_engine(mysql_server_url(), pool_size=1, max_overflow=0)
        try:
            async with engine.begin() as conn:
                await conn.exec_driver_sql(f"USE `{name}`")
                found = dict(await _counters(conn, name))
                if found.keys() != expected.keys():
                    return False
                probe = " UNION ALL ".join(
                    f"SELECT '{table}' FROM DUAL WHERE EXISTS (SELECT 1 FROM `{table}`)"
                    for table in expected
                )
                touched = {str(t) for t in (await conn.exec_driver_sql(probe)).scalars()}
                touched |= set(schema.with_rows)
                await conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
                for table in sorted(touched):
                    await conn.exec_driver_sql(f"TRUNCATE TABLE `{table}`")
                for table in schema.with_rows:
                    await conn.exec_driver_sql(
                        f"INSERT INTO `{table}` SELECT * FROM `{schema.name}`.`{table}`"
                    )
                await conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
                for table, counter in await _counters(conn, name):
                    if counter != expected[table]:  # moved, its rows deleted or rolled back
                        await conn.exec_driver_sql(
                            f"ALTER TABLE `{table}` AUTO_INCREMENT = {expected[table]}"
                        )
        finally:
            await engine.dispose()
        return True

    async def drop(self) -> None:
        if self._shared is not None:
            await drop_mysql_database(self._shared[0])
            self._shared = None
        if self._schema is not None:
            await drop_mysql_database(self._schema.name)
            self._schema = None


async def _read_schema(name: str) -> _Schema:
    engine = create_engine(mysql_server_url(), pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            for what, query in _NOT_COPIED:
                if (await conn.execute(text(query), {"db": name})).scalar():
                    raise AssertionError(f"the head schema has {what}: teach MysqlTemplate them")
            tables = (
                await conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables"
                        " WHERE table_schema = :db AND table_type = 'BASE TABLE'"
                        " ORDER BY table_name"
                    ),
                    {"db": name},
                )
            ).scalars()
            ddl: list[str] = []
            with_rows: list[str] = []
            for table in list(tables):
                shown = await conn.exec_driver_sql(f"SHOW CREATE TABLE `{name}`.`{table}`")
                ddl.append(str(tuple(shown.one())[1]))
                count = await conn.exec_driver_sql(f"SELECT COUNT(*) FROM `{name}`.`{table}`")
                if count.scalar():
                    with_rows.append(str(table))
            counters = await _counters(conn, name)
    finally:
        await engine.dispose()
    return _Schema(name=name, ddl=tuple(ddl), with_rows=tuple(with_rows), counters=counters)


async def _counters(conn: AsyncConnection, name: str) -> tuple[tuple[str, int | None], ...]:
    """Each base table of database `name` with its AUTO_INCREMENT counter, by name."""
    found = await conn.execute(
        text(
            "SELECT table_name, auto_increment FROM information_schema.tables"
            " WHERE table_schema = :db AND table_type = 'BASE TABLE' ORDER BY table_name"
        ),
        {"db": name},
    )
    return tuple((str(t), None if counter is None else int(counter)) for t, counter in found)


#: this process's template (each pytest-xdist worker is a process of its own)
MYSQL_HEAD = MysqlTemplate()
