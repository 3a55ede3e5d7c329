"""The test databases copied from the migrated MariaDB template equal a migrated database:
the same tables with the same DDL (keys, foreign keys, defaults, auto-increment counters)
and the same rows; the shared database lent to module after module equals a copy each time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.schema_upgrade import upgrade_database
from adapters.mysql.uow import SqlUnitOfWorkFactory
from domain.enums import VmHistoryActionType
from tests.contract.storage_backends import TEST_KEY, at, empty_all_tables, stored_world
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


async def _databases() -> set[str]:
    engine = create_engine(mysql_server_url(), pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            return set((await conn.exec_driver_sql("SHOW DATABASES")).scalars())
    finally:
        await engine.dispose()


async def test_the_shared_database_is_lent_again_as_a_fresh_copy() -> None:
    """What a module leaves (rows, seed rows deleted, counters moved by rows since deleted)
    is gone at the next lending: the same database, equal to a fresh copy, counters included
    (`SHOW CREATE TABLE`'s AUTO_INCREMENT), so each module's first ids are a fresh copy's."""
    name, url = await MYSQL_HEAD.shared()
    engine = create_engine(url)
    try:
        factory = SqlUnitOfWorkFactory(engine, AesGcmSecretBox(TEST_KEY))
        await stored_world(factory)
        await empty_all_tables(engine)  # counters moved, no rows, the seed rows gone too
        await stored_world(factory)  # rows, ids past the first
        async with engine.connect() as conn:  # no row, its counter moved: rolled back
            vm = (await conn.execute(select(tables.vm.c.id))).scalar_one()
            row = {"vm_id": vm, "action_type": VmHistoryActionType.CREATED, "timestamp": at(1)}
            await conn.execute(insert(tables.vm_history).values(row))
            await conn.rollback()
    finally:
        await engine.dispose()
    copied, _ = await MYSQL_HEAD.copy()
    try:
        again, _ = await MYSQL_HEAD.shared()

        assert again == name
        expected, got = await _contents(copied), await _contents(name)
        assert sorted(got) == sorted(expected)
        for table, contents in expected.items():
            assert got[table] == contents, table
        assert "AUTO_INCREMENT=2 " in expected["company"][0]  # after its seed row
        assert "AUTO_INCREMENT=" not in expected["vm_history"][0]
    finally:
        await drop_mysql_database(copied)


async def test_a_shared_database_whose_tables_changed_is_replaced() -> None:
    name, url = await MYSQL_HEAD.shared()
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE extra (id INT PRIMARY KEY)")
    finally:
        await engine.dispose()

    again, _ = await MYSQL_HEAD.shared()

    assert again != name
    databases = await _databases()
    assert again in databases and name not in databases
