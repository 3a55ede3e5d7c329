"""A region's IPv4 pool on memory, SQLite and MariaDB: an order it cannot address is refused
like a full host, and a payment for a VM that can no longer get an address becomes credit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import attrs
import pytest

from adapters.memory.storage import MemoryUnitOfWorkFactory
from app.billing.errors import NoHostAvailable
from app.billing.reserved import UNPAID_HOLD_LIMIT
from domain.credit import payment_meta
from domain.model import GIB, Vm
from domain.price_basis import CREDIT_KEY
from domain.unpaid_room import NO_UNPAID_ROOM_LIMITS
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables, engine_on, sql_factory, world_over
from tests.contract.storage_backends import Database
from tests.unit.billing.world import ALICE, BOB
from tests.unit.worker.world import World

database = storage_backends.database
MINUTE = timedelta(minutes=1)
#: 10.0.0.0/29 with gateway .1: .2 to .6
ADDRESSES = 5


@pytest.fixture
async def world(database: Database) -> AsyncIterator[World]:
    """The worker world, its region's pool cut to a /29 (five addresses) and its host roomy
    (CPU, memory and disk never the limit), no D25 room limits."""
    if database.url is None:
        yield await _small_pool(await world_over(MemoryUnitOfWorkFactory()))
        return
    async with engine_on(database) as engine:
        await empty_tables(engine, database.kind)
        yield await _small_pool(await world_over(sql_factory(engine)))


async def _small_pool(world: World) -> World:
    world.shop.unpaid_room = NO_UNPAID_ROOM_LIMITS
    async with world.shop.factory() as uow:
        host = await uow.hosts.get(1)
        ip_range = await uow.ip_ranges.get(1)
        assert host is not None and ip_range is not None
        await uow.hosts.update(attrs.evolve(host, cpu=256, memory=1024 * GIB))
        await uow.ip_ranges.update(attrs.evolve(ip_range, cidr="10.0.0.0/29"))
        await uow.commit()
    return world


async def _order(world: World, user_id: int = ALICE) -> Vm:
    return await world.shop.order(user_id, max_unpaid=None)


async def _paid(world: World) -> Vm:
    vm = await _order(world)
    assert (await world.complete(await world.renew(vm))).completed
    await world.run_jobs()
    return vm


async def _written(world: World) -> tuple[int, int]:
    """(subscriptions of Alice, live VMs) in the store."""
    async with world.shop.factory() as uow:
        subs = (await uow.subscriptions.list_by_user(ALICE, 100)).total
        return subs, len(await uow.vms.list_active())


async def _ips(world: World) -> list[str]:
    async with world.shop.factory() as uow:
        return sorted(a.ip for a in await uow.ip_assignments.list_live())


async def test_the_order_past_the_regions_last_address_is_refused_before_it_is_paid(
    world: World,
) -> None:
    """The reviewer's case: six VMs ordered and paid in a region of five addresses; the
    sixth was charged and never built. Now it is refused at order time, nothing written."""
    built = [await _paid(world) for _ in range(ADDRESSES)]
    assert all(world.host_state(vm.id) is not None for vm in built)
    assert await _ips(world) == [f"10.0.0.{n}" for n in range(2, 7)]
    before = await _written(world)

    with pytest.raises(NoHostAvailable) as err:
        await _order(world)

    assert err.value.message == "No available hosts found"  # the "no capacity" 422
    assert await _written(world) == before


async def test_orders_waiting_for_payment_or_build_hold_addresses_until_their_window_ends(
    world: World,
) -> None:
    """A paid VM not built yet and never-paid orders in their window each hold an address;
    an order past its window holds none, even before the worker deletes it."""
    await _paid(world)  # built: holds 10.0.0.2
    waiting = await _order(world)
    await world.complete(await world.renew(waiting))  # paid, its build not run yet
    for _ in range(ADDRESSES - 2):
        await _order(world, BOB)  # never paid
    with pytest.raises(NoHostAvailable):
        await _order(world)

    world.advance(UNPAID_HOLD_LIMIT + MINUTE)  # Bob's orders lapse; the paid one waits
    assert len(await _ips(world)) == 1
    for _ in range(ADDRESSES - 2):
        await _order(world, BOB)
    with pytest.raises(NoHostAvailable):
        await _order(world)
    await world.run_jobs()
    assert world.host_state(waiting.id) is not None


async def test_racing_orders_for_the_last_address_take_it_once(world: World) -> None:
    for _ in range(ADDRESSES - 1):
        await _paid(world)
    before = await _written(world)

    results = await asyncio.gather(*(_order(world) for _ in range(6)), return_exceptions=True)

    placed = [r for r in results if isinstance(r, Vm)]
    assert len(placed) == 1, results
    assert all(isinstance(r, NoHostAvailable) for r in results if not isinstance(r, Vm))
    assert await _written(world) == (before[0] + 1, before[1] + 1)


async def test_a_late_payment_whose_address_was_given_away_becomes_credit(world: World) -> None:
    """An order paid after its window, when others took every address meanwhile: booked
    like a late payment without room (its value as account credit, the admins told), not a
    build that fails eight times."""
    late = await _order(world)
    invoice = await world.renew(late)
    world.advance(UNPAID_HOLD_LIMIT + MINUTE)
    others = [await _paid(world) for _ in range(ADDRESSES)]
    before = await world.sub(late)
    calls = dict(world.host.calls)

    await world.complete(invoice)
    await world.run_jobs()

    paid = await world.shop.payment(invoice.id)
    assert paid.is_paid and paid.time_value == 0
    credit = payment_meta(paid)[CREDIT_KEY]
    assert credit["mode"] == "unrestorable" and credit["seconds"] == 0
    assert any("no IPv4 address left" in why for why in credit["changes"]), credit
    assert await world.sub(late) == before  # never set up, no time
    assert world.host_state(late.id) is None and world.host.calls == calls  # no build tried
    async with world.shop.factory() as uow:
        assert (await uow.credit_ledger.balances(ALICE)).get("EUR", 0) > 0
    assert all(world.host_state(vm.id) is not None for vm in others)


async def test_a_timely_payment_after_the_pool_shrank_becomes_credit(world: World) -> None:
    """The order held an address, then an admin disabled the range: its payment buys nothing
    it can be given, so it is credited, not built and retried."""
    vm = await _order(world)
    invoice = await world.renew(vm)
    async with world.shop.factory() as uow:
        ip_range = await uow.ip_ranges.get(1)
        assert ip_range is not None
        await uow.ip_ranges.update(attrs.evolve(ip_range, enabled=False))
        await uow.commit()

    await world.complete(invoice)
    await world.run_jobs()

    paid = await world.shop.payment(invoice.id)
    assert paid.is_paid and paid.time_value == 0
    assert payment_meta(paid)[CREDIT_KEY]["mode"] == "unrestorable"
    assert not (await world.sub(vm)).is_setup
    assert world.host_state(vm.id) is None
