"""Bring a database to the head schema: fresh install, upgrade, or adoption of an LNVPS database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
from alembic import command
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.mysql.engine import create_engine, url_is_mysql
from adapters.mysql.migrations import (
    HEAD,
    REVISIONS,
    SQLX_TABLE,
    VERSION_TABLE,
    alembic_config,
    data_guard,
)
from adapters.mysql.migrations.data_guard import DowngradeRefused
from adapters.mysql.migrations.shapes import (
    DELETED_SQLX_VERSIONS,
    FOREIGN_TABLES,
    SHAPES,
    SQLX_TO_REVISION,
)
from adapters.mysql.named_locks import of_this_database

_T = TypeVar("_T")
_LOCK_NAME = "lnvps_schema_upgrade"
_LOCK_TIMEOUT_S = 120


class SchemaMismatch(Exception):
    """The database is not in a shape this program can adopt or upgrade; nothing was changed."""


@attrs.frozen
class UpgradeReport:
    """What `upgrade_database` did."""

    from_revision: str | None
    to_revision: str | None
    applied: tuple[str, ...]
    adopted_sqlx_version: int | None = None

    @property
    def adopted(self) -> bool:
        return self.adopted_sqlx_version is not None


async def upgrade_database(url: str | URL, target: str = "head") -> UpgradeReport:
    """Apply pending revisions up to `target`, adopting an LNVPS (sqlx) database first if needed.

    Raises SchemaMismatch, leaving the database untouched, when an unversioned database does
    not match one of the LNVPS shapes r1–r3 correspond to.
    """

    def work(conn: Connection) -> UpgradeReport:
        start = _current(conn)
        adopted: int | None = None
        if start is None:
            adopted, start = _adoption_point(conn)
            if start is not None:
                _alembic(conn, "stamp", start)
        _alembic(conn, "upgrade", target)
        end = _current(conn)
        return UpgradeReport(start, end, _between(start, end), adopted)

    return await _with_connection(url, work, lock=True)


async def downgrade_database(url: str | URL, revision: str, *, destroy_data: bool = False) -> None:
    """Walk the schema down to `revision` (`"base"` drops everything Alembic created).

    Raises `DowngradeRefused`, before any DDL, when a revision to undo would drop a table or
    column that holds data (unless `destroy_data`) or is LNVPS's own migration on an adopted
    database (always). Each revision's `downgrade()` checks itself again, for a downgrade
    run by Alembic's own command instead of this function (`data_guard`).
    """

    def work(conn: Connection) -> None:
        steps = _steps_down(_current(conn), revision)
        data_guard.check(conn, steps, destroy_data=destroy_data)
        _alembic(conn, "downgrade", revision, {data_guard.DESTROY_DATA: destroy_data})

    await _with_connection(url, work, lock=True)


async def current_revision(url: str | URL) -> str | None:
    """The Alembic revision the database is at, or None when it is not versioned."""
    return await _with_connection(url, _current, lock=False)


async def _with_connection(url: str | URL, work: Callable[[Connection], _T], *, lock: bool) -> _T:
    pool: dict[str, Any] = {"pool_size": 1, "max_overflow": 0} if url_is_mysql(url) else {}
    engine = create_engine(url, foreign_keys=False, **pool)
    try:
        async with engine.connect() as conn:
            mysql = conn.dialect.name in ("mysql", "mariadb")
            if lock and mysql:
                await _get_lock(conn)
            try:
                result = await conn.run_sync(work)
                await conn.commit()
            finally:
                if lock and mysql:
                    await conn.execute(
                        text(f"DO RELEASE_LOCK({of_this_database('n')})"), {"n": _LOCK_NAME}
                    )
            if not mysql and lock:
                await _check_sqlite_foreign_keys(conn)
            return result
    finally:
        await engine.dispose()


async def _get_lock(conn: AsyncConnection) -> None:
    got = await conn.scalar(
        text(f"SELECT GET_LOCK({of_this_database('n')}, :t)"),
        {"n": _LOCK_NAME, "t": _LOCK_TIMEOUT_S},
    )
    if got != 1:
        raise RuntimeError("another process is upgrading the database schema (GET_LOCK timed out)")


async def _check_sqlite_foreign_keys(conn: AsyncConnection) -> None:
    rows = (await conn.execute(text("PRAGMA foreign_key_check"))).all()
    if rows:
        raise RuntimeError(f"foreign key violations after migration: {rows[:5]}")


def _alembic(
    conn: Connection, action: str, revision: str, attributes: dict[str, Any] | None = None
) -> None:
    config = alembic_config()
    config.attributes.update(attributes or {})
    config.attributes["connection"] = conn
    run: Any = getattr(command, action)
    run(config, revision)


def _steps_down(current: str | None, target: str) -> list[tuple[str, data_guard.Drops]]:
    """The revisions `downgrade target` undoes, newest first, with what each drops."""
    top = -1 if current is None else REVISIONS.index(current)
    if target == "base":
        bottom = -1
    elif target in REVISIONS:
        bottom = REVISIONS.index(target)
    elif target.startswith("-") and target[1:].isdigit():
        bottom = top - int(target[1:])
    else:
        raise ValueError(f"unknown revision {target!r}: give a full revision id, 'base' or -N")
    script = ScriptDirectory.from_config(alembic_config())
    steps = []
    for index in range(top, max(bottom, -1), -1):
        module = script.get_revision(REVISIONS[index]).module
        steps.append((REVISIONS[index], getattr(module, "DROPS", data_guard.NOTHING)))
    return steps


def _current(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _between(start: str | None, end: str | None) -> tuple[str, ...]:
    def index(rev: str | None) -> int:
        return -1 if rev is None else REVISIONS.index(rev)

    first, last = index(start), index(end)
    if last <= first:
        return ()
    return REVISIONS[first + 1 : last + 1]


# --- adoption -----------------------------------------------------------------------------
def _adoption_point(conn: Connection) -> tuple[int | None, str | None]:
    """(sqlx version, revision) to stamp an unversioned DB at; (None, None) for an empty DB."""
    inspector = inspect(conn)
    tables = set(inspector.get_table_names()) - {VERSION_TABLE}
    if not tables:
        return None, None
    if SQLX_TABLE not in tables:
        raise SchemaMismatch(
            "database has tables but neither alembic_version nor _sqlx_migrations: "
            f"refusing to touch it (tables: {', '.join(sorted(tables)[:10])})"
        )
    version = _sqlx_version(conn)
    revision = SQLX_TO_REVISION[version]
    problems = shape_differences(conn, revision)
    if problems:
        raise SchemaMismatch(
            f"LNVPS database at sqlx {version} does not match the expected shape: "
            + "; ".join(problems)
        )
    return version, revision


def _sqlx_version(conn: Connection) -> int:
    versions = data_guard.sqlx_migrations(conn)
    dirty = sorted(v for v, ok in versions.items() if not ok)
    if dirty:
        raise SchemaMismatch(f"_sqlx_migrations has failed (dirty) migration(s): {dirty}")
    deleted = sorted(v for v in versions if v in DELETED_SQLX_VERSIONS)
    if deleted:
        names = ", ".join(f"{v}_{DELETED_SQLX_VERSIONS[v]}" for v in deleted)
        raise SchemaMismatch(
            f"database applied deleted branch migration(s) {names}: not a valid LNVPS state"
        )
    if not versions:
        raise SchemaMismatch("_sqlx_migrations is empty")
    legacy = min(SQLX_TO_REVISION)
    unknown = sorted(v for v in versions if v > legacy and v not in SQLX_TO_REVISION)
    if unknown:
        raise SchemaMismatch(f"database applied unknown sqlx migration(s) {unknown}")
    highest = max(versions)
    if highest < legacy:
        raise SchemaMismatch(
            f"LNVPS database is at sqlx {highest}, older than {legacy}: "
            "let LNVPS migrate it to that version first"
        )
    missing = sorted(v for v in SQLX_TO_REVISION if v <= highest and v not in versions)
    if missing:
        raise SchemaMismatch(f"_sqlx_migrations lacks version(s) {missing} below {highest}")
    return highest


def shape_differences(conn: Connection, revision: str) -> list[str]:
    """Human-readable differences between the database and the shape `revision` expects."""
    inspector = inspect(conn)
    present = set(inspector.get_table_names())
    expected = SHAPES[revision]
    problems: list[str] = []
    for table in sorted(expected):
        if table not in present:
            problems.append(f"missing table {table}")
            continue
        columns = {c["name"]: c for c in inspector.get_columns(table)}
        for name in sorted(expected[table] - set(columns)):
            problems.append(f"missing column {table}.{name}")
        for name in sorted(set(columns) - expected[table]):
            problems.append(f"unexpected column {table}.{name}")
        if table == "vm" and "expires" in columns:
            legacy = revision == REVISIONS[0]
            if legacy and columns["expires"]["nullable"]:
                problems.append("column vm.expires is nullable, expected NOT NULL")
            if not legacy and not columns["expires"]["nullable"]:
                problems.append("column vm.expires is NOT NULL, expected nullable")
    later = present - set(expected) - FOREIGN_TABLES
    for table in sorted(later & _LATER_TABLES):
        problems.append(f"unexpected table {table}")
    return problems


#: Tables only our own later revisions create; their presence in an sqlx DB is a mismatch.
_LATER_TABLES = frozenset({"lifecycle_mark", "idempotency_key", VERSION_TABLE})

__all__ = [
    "HEAD",
    "DowngradeRefused",
    "SchemaMismatch",
    "UpgradeReport",
    "current_revision",
    "downgrade_database",
    "shape_differences",
    "upgrade_database",
]
