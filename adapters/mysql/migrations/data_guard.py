"""Downgrades never drop data by accident: what each one would drop is checked before any DDL.

Two rules, checked for every revision a downgrade walks over before the first one runs (DDL is
not transactional on MariaDB, so a refusal half-way would leave a half-downgraded schema):

* A revision that mirrors an LNVPS sqlx migration recorded in `_sqlx_migrations` (an adopted
  database) is irreversible: those tables and columns are LNVPS's own, not ours to drop.
* A revision that drops tables or columns refuses while any of them holds data (a row, or a
  non-NULL value), unless the caller asked to destroy data (`lnvps db downgrade --destroy-data`).

The check runs twice on purpose. `schema_upgrade.downgrade_database` (`lnvps db downgrade`)
checks every step before the first one runs, so its refusal changes nothing. Each revision's
`downgrade()` checks itself again (`refuse_data_loss`): that is the only guard when Alembic's
`command.downgrade` is called directly with a connection, bypassing `downgrade_database`; the
refusal then comes at that revision, after the newer ones were undone. A new revision that
drops a table or column declares `DROPS` and calls `refuse_data_loss` first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import sqlalchemy as sa
from alembic import context, op
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from adapters.mysql.migrations import SQLX_TABLE
from adapters.mysql.migrations.shapes import SQLX_TO_REVISION

#: `config.attributes` key set by `downgrade_database(destroy_data=True)`.
DESTROY_DATA = "destroy_data"


class DowngradeRefused(RuntimeError):
    """The downgrade would drop data (or LNVPS's own schema); nothing was changed."""


@attrs.frozen(kw_only=True)
class Drops:
    """What a revision's downgrade drops: whole tables, and columns of tables that stay.

    `exempt` names tables whose rows the revision wrote itself (r1's seed) and that are
    therefore not the operator's data. `unfit`: why the older schema cannot hold the data as
    it is now (None: it can), whatever `destroy_data` says; checked with the rest before the
    first DDL, so a refusal there leaves no revision above it undone.
    """

    tables: tuple[str, ...] = ()
    columns: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    exempt: frozenset[str] = frozenset()
    unfit: Callable[[Connection], str | None] | None = None


NOTHING = Drops()


def problems(conn: Connection, revision: str, drops: Drops, *, destroy_data: bool) -> list[str]:
    """Why undoing `revision` must not run now (empty: it may)."""
    inspector = inspect(conn)
    present = set(inspector.get_table_names())
    found: list[str] = []
    sqlx = sqlx_migrations(conn) if SQLX_TABLE in present else {}
    for version, mirrored in SQLX_TO_REVISION.items():
        if mirrored == revision and version in sqlx:
            found.append(
                f"{revision} is LNVPS's own sqlx migration {version} (this database was adopted): "
                "it cannot be undone"
            )
    if destroy_data:
        return found
    for table in drops.tables:
        if table in present and table not in drops.exempt and _has_rows(conn, table):
            found.append(f"table {table} holds rows")
    for table, names in drops.columns.items():
        if table not in present:
            continue
        existing = {str(c["name"]) for c in inspector.get_columns(table)}
        for name in names:
            if name in existing and _has_rows(conn, table, sa.column(name).is_not(None)):
                found.append(f"column {table}.{name} holds values")
    return found


def refuse_data_loss(revision: str, drops: Drops) -> None:
    """First call of a revision's `downgrade()`: raise `DowngradeRefused` if it would lose data.

    Repeats `downgrade_database`'s check for this revision alone, for a downgrade run by
    Alembic's own command (see the module docstring)."""
    destroy = bool(context.config.attributes.get(DESTROY_DATA, False))
    check(op.get_bind(), [(revision, drops)], destroy_data=destroy)


def check(conn: Connection, steps: Iterable[tuple[str, Drops]], *, destroy_data: bool) -> None:
    """Raise `DowngradeRefused` naming every table/column that undoing `steps` would lose."""
    steps = list(steps)
    unfit = [why for _, drops in steps if drops.unfit is not None and (why := drops.unfit(conn))]
    found = [
        p
        for revision, drops in steps
        for p in problems(conn, revision, drops, destroy_data=destroy_data)
    ]
    if found or unfit:
        hint = (
            ""
            if destroy_data or not found
            else "; back the database up and pass --destroy-data (destroy_data=True) to drop it"
        )
        why = "; ".join([*unfit, *found])
        raise DowngradeRefused(f"downgrade refused, nothing was changed: {why}{hint}")


def _has_rows(conn: Connection, table: str, where: sa.ColumnElement[bool] | None = None) -> bool:
    stmt = sa.select(sa.literal(1)).select_from(sa.table(table)).limit(1)
    if where is not None:
        stmt = stmt.where(where)
    return conn.execute(stmt).first() is not None


def sqlx_migrations(conn: Connection) -> dict[int, bool]:
    """The sqlx versions `_sqlx_migrations` records, each with whether it succeeded."""
    rows = conn.execute(sa.text(f"SELECT version, success FROM {SQLX_TABLE}")).all()
    return {int(v): _flag(s) for v, s in rows}


def _flag(value: Any) -> bool:
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big") != 0
    return bool(value)
