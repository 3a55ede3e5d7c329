"""What holds room on the hosts (D25) is read in a fixed number of statements, whatever the VMs.

Every order reads it to know which rooms are free (and the catalogue's capacity too): a backlog
of unpaid orders the worker has not yet deleted, or many custom VMs, must not make every order
slower.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import cast

import attrs
import pytest

from adapters.memory.storage import MemoryUnitOfWorkFactory
from adapters.mysql import in_lists
from adapters.mysql.uow import SqlUnitOfWorkFactory
from app.billing.ordering import OrderTerms, order_custom_vm
from app.billing.reserved import lapsed_unpaid_vms, reserved_and_unpaid_usage, reserved_usage
from domain.enums import DiskInterface, DiskType
from domain.model import GIB, Vm
from tests.contract import storage_backends
from tests.contract.lifecycle_world import (
    empty_tables,
    reserving_vms,
    sql_factory,
    world_over,
)
from tests.contract.storage_backends import Database, engine_for
from tests.http.test_statement_budgets import Counter, counting
from tests.unit.billing.world import ALICE, ALICE_KEY, BOB, IMAGE, PRICING, add_host
from tests.unit.worker.world import World

# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database

#: the never-paid VMs ordered over an hour ago, their subscriptions, their pending payments
LAPSED_BUDGET = 3
#: the specs of the live VMs summed by host and disk, those three, and the templates of the
#: lapsed orders (the custom templates too when one of them is custom)
USAGE_BUDGET = 5
#: cpu, memory, disk, disk type, interface of the custom VMs ordered here
CUSTOM_SPEC = (2, 4 * GIB, 80 * GIB, DiskType.SSD, DiskInterface.PCIE)


async def _roomy(world: World) -> World:
    async with world.shop.factory() as uow:
        host = await uow.hosts.get(1)
        assert host is not None
        await uow.hosts.update(attrs.evolve(host, cpu=256, memory=1024 * GIB))
        await uow.commit()
    return world


@pytest.fixture
async def any_world(database: Database) -> AsyncIterator[World]:
    """The world on memory, SQLite or MariaDB, its host roomy."""
    if database.url is None:
        yield await _roomy(await world_over(MemoryUnitOfWorkFactory()))
        return
    async with engine_for(database) as engine:
        await empty_tables(engine, database.kind)
        yield await _roomy(await world_over(sql_factory(engine)))


@pytest.fixture
async def world(any_world: World) -> World:
    """`any_world` on a SQL backend only: the statements are counted."""
    if not isinstance(any_world.shop.factory, SqlUnitOfWorkFactory):
        pytest.skip("memory storage runs no SQL (its answers are checked by test_unpaid_orders)")
    return any_world


async def _lapsed(world: World) -> tuple[set[int], Counter]:
    engine = cast(SqlUnitOfWorkFactory, world.shop.factory).engine
    async with world.shop.factory() as uow:
        with counting(engine) as counter:
            found = {vm.id for vm in await lapsed_unpaid_vms(uow, world.now)}
    return found, counter


async def _orders(world: World, n: int, user_id: int) -> list[Vm]:
    return [await world.shop.order(user_id, max_unpaid=None) for _ in range(n)]


async def test_lapsed_orders_cost_the_same_statements_for_one_or_many(world: World) -> None:
    first = await _orders(world, 1, BOB)
    world.advance(timedelta(hours=2))
    one_found, one = await _lapsed(world)
    assert one_found == {first[0].id}

    more = await _orders(world, 6, BOB)
    world.advance(timedelta(minutes=55))
    kept = more[0]
    await world.renew(kept)  # a pending invoice keeps this order's room past the hour (D25)
    world.advance(timedelta(minutes=6))
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


async def _both_usages(world: World) -> tuple[tuple[int, int], Counter]:
    engine = cast(SqlUnitOfWorkFactory, world.shop.factory).engine
    async with world.shop.factory() as uow:
        with counting(engine) as counter:
            every, unpaid = await reserved_and_unpaid_usage(uow, {1}, world.now)
    return (every[1].cpu, unpaid[1].cpu), counter


async def test_room_held_by_unpaid_orders_costs_one_more_statement_for_one_or_many(
    world: World,
) -> None:
    """Every order reads what never-paid orders hold (D25's host share) beside the rest:
    one more sum, the lapsed orders read once for both."""
    await world.shop.order(BOB, max_unpaid=None)
    world.advance(timedelta(hours=2))  # a lapsed order: read, but holds no room
    await _custom(world)
    one_used, one = await _both_usages(world)
    for _ in range(5):
        await _custom(world)
    many_used, many = await _both_usages(world)

    cpu = CUSTOM_SPEC[0]
    assert (many_used[0] - one_used[0], many_used[1] - one_used[1]) == (5 * cpu, 5 * cpu)
    assert one.count == many.count == USAGE_BUDGET + 1, (one.statements, many.statements)


async def test_the_summed_room_equals_the_room_of_each_reserving_vm(
    any_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database's sums minus the lapsed orders are exactly what `reserving_vms` holds,
    host by host and disk by disk, and its never-paid sums what those of them that were
    never paid hold (D25's host share): two hosts, standard and custom VMs, a deleted VM,
    lapsed standard and custom orders, paid VMs; every `IN` list cut to one id (the chunked
    reads)."""
    world = any_world
    monkeypatch.setattr(in_lists, "IN_LIST_SIZE", 1)
    async with world.shop.factory() as uow:
        added = await add_host(uow, region_id=1, name="h2", ip="10.0.0.2")
        second = attrs.evolve(added, cpu=256, memory=1024 * GIB)  # as roomy as the first
        await uow.hosts.update(second)
        await uow.commit()
    lapsed = [await world.shop.order(BOB, max_unpaid=None) for _ in range(2)]
    lapsed += [await _custom(world) for _ in range(2)]
    world.advance(timedelta(hours=2))
    await world.paid_vm()
    await world.paid_vm()
    await world.shop.order(BOB, max_unpaid=None)
    fresh = [await _custom(world) for _ in range(3)]
    async with world.shop.factory() as uow:
        await uow.vms.delete(fresh[0].id)
        await uow.commit()
    hosts = {1, second.id}

    async with world.shop.factory() as uow:
        held = await reserving_vms(uow, world.now)
        usage = await reserved_usage(uow, hosts, world.now)
        both, unpaid = await reserved_and_unpaid_usage(uow, hosts, world.now)
        never_paid = {vm.id for vm in await uow.vms.list_never_paid()}
        expected: dict[int, list[int]] = {h: [0, 0] for h in hosts}
        expected_unpaid: dict[int, list[int]] = {h: [0, 0] for h in hosts}
        disks: defaultdict[int, int] = defaultdict(int)
        unpaid_disks: defaultdict[int, int] = defaultdict(int)
        for vm in held:
            spec = await (
                uow.templates.get(vm.template_id)
                if vm.template_id is not None
                else uow.custom_templates.get(vm.custom_template_id or 0)
            )
            assert spec is not None
            expected[vm.host_id][0] += spec.cpu
            expected[vm.host_id][1] += spec.memory
            disks[vm.disk_id] += spec.disk_size
            if vm.id in never_paid:  # D25's host share: what never-paid orders hold
                expected_unpaid[vm.host_id][0] += spec.cpu
                expected_unpaid[vm.host_id][1] += spec.memory
                unpaid_disks[vm.disk_id] += spec.disk_size
        totals = await uow.vms.spec_totals([second.id, 1, 1, 999])
        unpaid_totals = await uow.vms.spec_totals([second.id, 1, 999], never_paid=True)
    held_ids = {vm.id for vm in held}
    assert not held_ids & {vm.id for vm in [*lapsed, fresh[0]]}
    assert {vm.host_id for vm in held} == hosts  # both hosts hold VMs
    assert {vm.host_id for vm in lapsed} == hosts  # and both have lapsed orders
    for host in hosts:
        assert [usage[host].cpu, usage[host].memory] == expected[host], host
        assert [both[host].cpu, both[host].memory] == expected[host], host
        assert [unpaid[host].cpu, unpaid[host].memory] == expected_unpaid[host], host
    used_disks = {d: n for h in hosts for d, n in usage[h].disk.items() if n}
    assert used_disks == dict(disks)
    assert {d: n for h in hosts for d, n in unpaid[h].disk.items() if n} == dict(unpaid_disks)
    assert 0 < sum(e[0] for e in expected_unpaid.values()) < sum(e[0] for e in expected.values())
    assert [t.host_id for t in totals] == sorted(t.host_id for t in totals)
    lapsed_cpu = 2 * 2 + 2 * CUSTOM_SPEC[0]  # two Tiny orders (2 vCPU) and two custom ones
    assert sum(t.cpu for t in totals) == sum(e[0] for e in expected.values()) + lapsed_cpu
    # the database's never-paid sums: the holding orders and the lapsed ones, no paid VM
    unpaid_cpu = sum(e[0] for e in expected_unpaid.values())
    assert sum(t.cpu for t in unpaid_totals) == unpaid_cpu + lapsed_cpu
