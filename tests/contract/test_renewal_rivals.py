"""Concurrent renewals of one VM store one payment on memory, SQLite and MariaDB: the re-check
under the subscription lock finds the rival's payment and the extra invoices are cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import attrs
import pytest

from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables, engine_on, sql_factory
from tests.contract.storage_backends import Database
from tests.unit.billing.world import Shop, new_shop, seed

database = storage_backends.database


@pytest.fixture
async def shop(database: Database) -> AsyncIterator[Shop]:
    if database.url is None:
        yield await new_shop()
        return
    async with engine_on(database) as engine:
        await empty_tables(engine, database.kind)
        factory: UnitOfWorkFactory = sql_factory(engine)
        await seed(factory)
        yield attrs.evolve(await new_shop(), factory=cast(Any, factory))


async def test_concurrent_renewals_store_one_payment_per_interval_count(shop: Shop) -> None:
    vm = await shop.order()
    for intervals in (2, 3):
        racing = await asyncio.gather(*(shop.renew(vm, intervals=intervals) for _ in range(6)))
        assert len({p.id for p in racing}) == 1
    assert len(await shop.payments(vm)) == 2
    assert len(shop.node.invoices) > 2  # the requests did race
    assert len(shop.node.cancelled) == len(shop.node.invoices) - 2
    again = await shop.renew(vm, intervals=3)  # reused, no new invoice
    assert again.id == racing[0].id
