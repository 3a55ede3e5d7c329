"""The test databases copied from the migrated MariaDB template equal a migrated database:
the same tables with the same DDL (keys, foreign keys, defaults, auto-increment counters)
and the same rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text

from adapters.mysql.engine import create_engine
from adapters.mysql.schema_upgrade import upgrade_database
from tests.dbtest import MYSQL_HEAD, create_mysql_database, drop_mysql_database, mysql_server_url

pytestmark = pytest.mark.mysql


def _timeless(row: Any) -> tuple[Any, ...]:
    """A row with its timestamps left out: the seed rows are stamped when they are written,
    so the template's are older than a migration made later."""
    return tuple("<time>" if isinstance(v, datetime) else v for v in row)


async def _contents(name: str) -> dict[str, tuple[str, list[tuple[Any, ...]]]]:
    """Each base table's DDL (its own name left out) and rows, in primary-key order."""
    engine = create_engine(mysql_server_url(), pool_size=1, max_overflow=0)
    out: dict[str, tuple[str, list[tuple[Any, ...]]]] = {}
    try:
        async with engine.connect() as conn:
            tables = (
                await conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables"
                        " WHERE table_schema = :db ORDER BY table_name"
                    ),
                    {"db": name},
                )
            ).scalars()
            for table in list(tables):
                shown = await conn.exec_driver_sql(f"SHOW CREATE TABLE `{name}`.`{table}`")
                rows = await conn.exec_driver_sql(f"SELECT * FROM `{name}`.`{table}` ORDER BY 1")
                out[str(table)] = (str(tuple(shown.one())[1]), [_timeless(r) for r in rows])
    finally:
        await engine.dispose()
    return out


async def test_a_copy_of_the_template_equals_a_migrated_database() -> None:
    migrated, url = await create_mysql_database()
    copied, _ = await MYSQL_HEAD.copy()
    try:
        await upgrade_database(url)

        expected, got = await _contents(migrated), await _contents(copied)

        assert len(expected) > 30 and "alembic_version" in expected
        assert sorted(got) == sorted(expected)
        for table, (ddl, rows) in expected.items():
            assert got[table] == (ddl, rows), table
        assert any(rows for _, rows in expected.values())  # the seed rows are compared too
    finally:
        await drop_mysql_database(migrated)
        await drop_mysql_database(copied)
