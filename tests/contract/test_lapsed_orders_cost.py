"""Stale never-paid orders (D25) are found in a fixed number of statements, whatever their count.

Every order reads them to know which rooms are free, so a backlog of unpaid orders the worker
has not yet deleted must not make every order slower.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import cast

import attrs
import pytest

from adapters.mysql.uow import SqlUnitOfWorkFactory
from app.billing.reserved import lapsed_unpaid_vm_ids
from domain.model import Vm
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables, engine_on, sql_factory, world_over
from tests.contract.storage_backends import Database
from tests.http.test_statement_budgets import Counter, counting
from tests.unit.billing.world import BOB
from tests.unit.worker.world import World

# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database

#: the never-paid VMs ordered over an hour ago, their subscriptions, their pending payments
LAPSED_BUDGET = 3


@pytest.fixture
async def world(database: Database) -> AsyncIterator[World]:
    if database.url is None:
        pytest.skip("memory storage runs no SQL (its answers are checked by test_unpaid_orders)")
    async with engine_on(database) as engine:
        await empty_tables(engine, database.kind)
        world = await world_over(sql_factory(engine))
        async with world.shop.factory() as uow:
            host = await uow.hosts.get(1)
            assert host is not None
            await uow.hosts.update(attrs.evolve(host, cpu=256))
            await uow.commit()
        yield world


async def _lapsed(world: World) -> tuple[set[int], Counter]:
    engine = cast(SqlUnitOfWorkFactory, world.shop.factory).engine
    async with world.shop.factory() as uow:
        with counting(engine) as counter:
            found = await lapsed_unpaid_vm_ids(uow, world.now)
    return found, counter


async def _orders(world: World, n: int, user_id: int) -> list[Vm]:
    return [await world.shop.order(user_id, max_unpaid=None) for _ in range(n)]


async def test_lapsed_orders_cost_the_same_statements_for_one_or_many(world: World) -> None:
    first = await _orders(world, 1, BOB)
    world.advance(timedelta(hours=2))
    one_found, one = await _lapsed(world)
    assert one_found == {first[0].id}

    more = await _orders(world, 6, BOB)
    world.advance(timedelta(hours=2))
    kept = more[0]
    await world.renew(kept)  # a pending invoice keeps this order's room (D25)
    many_found, many = await _lapsed(world)

    assert many_found == {vm.id for vm in first + more[1:]}
    assert one.count == many.count == LAPSED_BUDGET, (one.statements, many.statements)
