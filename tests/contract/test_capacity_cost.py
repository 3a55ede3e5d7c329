"""What holds room on the hosts (D25) is read in a fixed number of statements, whatever the VMs.

Every order reads it to know which rooms are free (and the catalogue's capacity too): a backlog
of unpaid orders the worker has not yet deleted, or many custom VMs, must not make every order
slower.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import cast

import attrs
import pytest

from adapters.mysql.uow import SqlUnitOfWorkFactory
from app.billing.ordering import OrderTerms, order_custom_vm
from app.billing.reserved import lapsed_unpaid_vm_ids, reserved_usage
from domain.enums import DiskInterface, DiskType
from domain.model import GIB, Vm
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables, engine_on, sql_factory, world_over
from tests.contract.storage_backends import Database
from tests.http.test_statement_budgets import Counter, counting
from tests.unit.billing.world import ALICE, ALICE_KEY, BOB, IMAGE, PRICING
from tests.unit.worker.world import World

# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database

#: the never-paid VMs ordered over an hour ago, their subscriptions, their pending payments
LAPSED_BUDGET = 3
#: those three, the live VMs, the templates, the custom templates of the custom VMs
USAGE_BUDGET = 6
#: cpu, memory, disk, disk type, interface of the custom VMs ordered here
CUSTOM_SPEC = (2, 4 * GIB, 80 * GIB, DiskType.SSD, DiskInterface.PCIE)


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


async def _usage(world: World) -> tuple[tuple[int, int, int], Counter]:
    engine = cast(SqlUnitOfWorkFactory, world.shop.factory).engine
    async with world.shop.factory() as uow:
        with counting(engine) as counter:
            usage = (await reserved_usage(uow, {1}, world.now))[1]
    return (usage.cpu, usage.memory, sum(usage.disk.values())), counter


async def _custom(world: World) -> Vm:
    terms = OrderTerms(user_id=ALICE, image_id=IMAGE, ssh_key_id=ALICE_KEY, max_unpaid=None)
    spec = CUSTOM_SPEC
    return await order_custom_vm(world.shop.factory, world.clock, terms, PRICING, *spec)


async def test_room_held_by_custom_vms_costs_the_same_statements_for_one_or_many(
    world: World,
) -> None:
    """One custom template read per custom VM was one statement per VM on every order."""
    await world.shop.order(BOB, max_unpaid=None)
    world.advance(timedelta(hours=2))  # a lapsed order: read, but holds no room
    await world.shop.order(BOB, max_unpaid=None)  # a standard template's VM
    await _custom(world)
    one_used, one = await _usage(world)
    for _ in range(5):
        await _custom(world)
    many_used, many = await _usage(world)

    cpu, memory, disk = CUSTOM_SPEC[:3]
    assert (many_used[0] - one_used[0], many_used[1] - one_used[1]) == (5 * cpu, 5 * memory)
    assert many_used[2] - one_used[2] == 5 * disk
    assert one.count == many.count == USAGE_BUDGET, (one.statements, many.statements)
