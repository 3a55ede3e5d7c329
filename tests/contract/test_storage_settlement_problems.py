"""The settlements the Lightning intake could not complete are stored once per payment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from adapters.memory.storage import MemoryUnitOfWorkFactory
from ports.storage import SettlementProblem, UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables, sql_factory
from tests.contract.storage_backends import Database, engine_for

# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database


@pytest.fixture
async def factory(database: Database) -> AsyncIterator[UnitOfWorkFactory]:
    if database.url is None:
        yield MemoryUnitOfWorkFactory()
        return
    async with engine_for(database) as engine:
        await empty_tables(engine, database.kind)
        yield sql_factory(engine)


async def test_a_settlement_problem_is_stored_once_per_payment(factory: UnitOfWorkFactory) -> None:
    at = datetime(2026, 2, 1, tzinfo=UTC)

    def problem(payment_id: bytes, index: int) -> SettlementProblem:
        return SettlementProblem(
            id=0,
            payment_id=payment_id,
            settle_index=index,
            amount_paid_msat=5_000,
            error="ShortSettlement",
            message="less than invoiced",
            created=at,
        )

    async with factory() as uow:
        assert await uow.settlement_problems.record(problem(b"a" * 32, 7))
        assert not await uow.settlement_problems.record(problem(b"a" * 32, 8))
        assert await uow.settlement_problems.record(problem(b"b" * 32, 9))
        await uow.commit()
    async with factory() as uow:
        stored = await uow.settlement_problems.list_recent(10)
        assert [p.payment_id for p in stored] == [b"b" * 32, b"a" * 32]
        assert stored[1].settle_index == 7 and stored[1].created == at
        assert [p.payment_id for p in await uow.settlement_problems.list_recent(1)] == [b"b" * 32]
        assert await uow.settlement_problems.get_by_payment(b"a" * 32) == stored[1]
        assert await uow.settlement_problems.get_by_payment(b"c" * 32) is None
