"""The per-test storage reset (`empty_all_tables`) empties every table, and only runs a DELETE
on the tables that hold rows: one probe statement finds them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.mysql import tables
from adapters.mysql.uow import SqlUnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import (
    TEST_KEY,
    Database,
    empty_all_tables,
    engine_for,
    seed_world,
    tables_with_rows,
)
from tests.sql_events import listening

database = storage_backends.database


async def _row_counts(conn: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in tables.metadata.sorted_tables:
        counts[table.name] = int(
            (await conn.execute(select(func.count()).select_from(table))).scalar()
        )
    return counts


@storage_backends.only("sqlite", "mysql")
async def test_the_reset_empties_every_table_deleting_from_the_filled_ones_only(
    database: Database,
) -> None:
    async with engine_for(database) as engine:
        await empty_all_tables(engine)
        async with SqlUnitOfWorkFactory(engine, AesGcmSecretBox(TEST_KEY))() as uow:
            await seed_world(uow)
            await uow.commit()
        async with engine.connect() as conn:
            before = await _row_counts(conn)
            filled = await tables_with_rows(conn)
        assert filled == {name for name, n in before.items() if n}
        assert {"users", "vm", "subscription"} <= filled  # the World's rows
        assert len(filled) < len(tables.metadata.sorted_tables) / 2

        statements: list[str] = []

        def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        with listening(engine, "before_cursor_execute", seen):
            await empty_all_tables(engine)

        deletes = [s for s in statements if s.lstrip().upper().startswith("DELETE")]
        assert len(deletes) == len(filled)  # one DELETE per filled table, none for the rest
        assert len(statements) == len(filled) + 1  # and the probe
        async with engine.connect() as conn:
            assert set((await _row_counts(conn)).values()) == {0}
            assert await tables_with_rows(conn) == set()
