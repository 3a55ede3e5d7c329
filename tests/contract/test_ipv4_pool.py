"""A region's IPv4 pool on memory, SQLite and MariaDB: an order it cannot address is refused
like a full host, and a payment for a VM that can no longer get an address becomes credit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from fractions import Fraction

import attrs
import pytest

from adapters.memory.storage import MemoryUnitOfWorkFactory
from app.billing.errors import NoHostAvailable
from app.billing.reserved import UNPAID_HOLD_LIMIT
from app.queries.catalogue import list_offers
from domain.credit import payment_meta
from domain.exchange import RateTable
from domain.model import GIB, Vm
from domain.price_basis import CREDIT_KEY
from domain.unpaid_room import NO_UNPAID_ROOM_LIMITS, UnpaidRoom
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables, sql_factory, world_over
from tests.contract.storage_backends import Database, engine_for
from tests.unit.billing.world import ALICE, BOB
from tests.unit.worker.world import World

database = storage_backends.database
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
#: 10.0.0.0/29 with gateway .1: .2 to .6
ADDRESSES = 5
HALF = Fraction(1, 2)
#: the admins' notice of a payment booked as credit because its VM cannot be built
NOTICE = "Payment for a VM that cannot be restored or placed"
#: what the payer of such a payment is told (the subscription's id before it)
PAYER_TITLE = "Payment added to your account credit"


@pytest.fixture
async def world(database: Database) -> AsyncIterator[World]:
    """The worker world, its region's pool cut to a /29 (five addresses) and its host roomy
    (CPU, memory and disk never the limit), no D25 room limits."""
    if database.url is None:
        yield await _small_pool(await world_over(MemoryUnitOfWorkFactory()))
        return
    async with engine_for(database) as engine:
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


def _admin_notice(world: World) -> str:
    [notice] = [n for n in world.notifier.to_admins() if NOTICE in n.title]
    return notice.message


async def _range_enabled(world: World, enabled: bool) -> None:
    async with world.shop.factory() as uow:
        ip_range = await uow.ip_ranges.get(1)
        assert ip_range is not None
        await uow.ip_ranges.update(attrs.evolve(ip_range, enabled=enabled))
        await uow.commit()


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


async def test_unpaid_orders_are_promised_at_most_the_host_share_of_the_addresses(
    world: World,
) -> None:
    """(r5) `unpaid-host-share` held CPU, memory and disk, not addresses: five tiny
    never-paid orders of two free keys took every address of the region, and every order
    after them was refused. Now never-paid orders are promised at most half of the five
    (two): the third is refused while three are free; a paid, built VM holds its address
    outside the share, so once one is paid another may be ordered; a paid VM still
    waiting for its build is outside it too."""
    world.shop.unpaid_room = UnpaidRoom(cpu=None, memory=None, disk=None, host_share=HALF)
    first = await _order(world)
    await _order(world, BOB)
    with pytest.raises(NoHostAvailable) as err:
        await _order(world, BOB)
    assert err.value.message == "No available hosts found"
    assert (await world.complete(await world.renew(first))).completed  # not built yet
    await _order(world, BOB)
    with pytest.raises(NoHostAvailable):
        await _order(world)
    await world.run_jobs()
    assert await _ips(world) == ["10.0.0.2"]
    world.advance(UNPAID_HOLD_LIMIT + MINUTE)  # Bob's orders lapse: they hold nothing
    for _ in range(2):
        await _order(world)
    with pytest.raises(NoHostAvailable):
        await _order(world)


async def _offered(world: World) -> tuple[int, int]:
    """How many templates and custom pricings the catalogue offers a new order now."""
    offers = await list_offers(world.shop.factory, RateTable(), world.now, HALF)
    return len(offers.templates), len(offers.custom)


async def test_the_catalogue_hides_a_region_whose_unpaid_address_share_is_used_up(
    world: World,
) -> None:
    """Every new order is unpaid, so once never-paid orders hold their share of the
    region's addresses every order there is refused (422): the catalogue offered the
    region all the same, since it looked at the pool alone. Now it offers what an order
    would get: nothing while the share is used up, the offers again once an order is paid
    (a paid VM is outside the share) or lapses."""
    world.shop.unpaid_room = UnpaidRoom(cpu=None, memory=None, disk=None, host_share=HALF)
    assert await _offered(world) == (1, 1)
    first = await _order(world)
    await _order(world, BOB)  # two of the five addresses: half, rounded down
    assert await _offered(world) == (0, 0)
    with pytest.raises(NoHostAvailable):
        await _order(world)
    assert (await world.complete(await world.renew(first))).completed
    assert await _offered(world) == (1, 1)
    await _order(world, BOB)
    assert await _offered(world) == (0, 0)
    world.advance(UNPAID_HOLD_LIMIT + MINUTE)  # Bob's orders lapse: they hold nothing
    assert await _offered(world) == (1, 1)


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
    assert f"region 1 has no IPv4 address left for VM {late.id}" in _admin_notice(world)
    [told] = world.notifier.titled(f"[Subscription {before.id}] {PAYER_TITLE}")
    assert told.user_id == ALICE and "IPv4" not in told.message  # the reasons stay with admins


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


async def test_a_renewal_of_a_built_vm_needs_no_address_from_a_full_or_closed_pool(
    world: World,
) -> None:
    """Its addresses are its own: every address given, then the range disabled, and its
    renewal still buys its month: nothing credited, no notice of a credit to the admins."""
    built = [await _paid(world) for _ in range(ADDRESSES)]
    with pytest.raises(NoHostAvailable):
        await _order(world)
    await _range_enabled(world, False)
    vm = built[0]
    before = await world.sub(vm)

    invoice = await world.renew(vm)
    assert (await world.complete(invoice)).completed

    after = await world.sub(vm)
    assert before.expires is not None and after.expires is not None
    assert after.expires > before.expires
    paid = await world.shop.payment(invoice.id)
    assert paid.is_paid and paid.time_value is not None and paid.time_value > 0
    assert payment_meta(paid).get(CREDIT_KEY, {}).get("mode") != "unrestorable"
    assert [n for n in world.notifier.to_admins() if NOTICE in n.title] == []


async def test_a_renewal_of_a_paid_vm_still_waiting_for_its_build_is_not_judged(
    world: World,
) -> None:
    """Its address has been counted as promised since its order: the renewal takes no other.
    Even when the pool shrank under it (its range disabled) the renewal buys its time; the
    VM is built once the range is back, as the VM check would build it."""
    vm = await _order(world)
    assert (await world.complete(await world.renew(vm))).completed  # paid, not built yet
    await _range_enabled(world, False)
    before = await world.sub(vm)

    invoice = await world.renew(vm)
    assert (await world.complete(invoice)).completed

    after = await world.sub(vm)
    assert before.expires is not None and after.expires is not None
    assert after.expires > before.expires
    paid = await world.shop.payment(invoice.id)
    assert payment_meta(paid).get(CREDIT_KEY, {}).get("mode") != "unrestorable"
    assert [n for n in world.notifier.to_admins() if NOTICE in n.title] == []
    await _range_enabled(world, True)
    await world.run_jobs()
    assert world.host_state(vm.id) is not None
    assert await _ips(world) == ["10.0.0.2"]


async def test_two_late_first_payments_for_the_last_address_set_up_one(world: World) -> None:
    """Orders paid after their window are judged under the region's lock: with one address
    left, exactly one of two such payments arriving together gets it, the other is credit.
    Two buyers, so no user lock orders the two bookings: only the region's does."""
    late = [await _order(world, user) for user in (ALICE, BOB)]
    invoices = [await world.renew(vm) for vm in late]
    world.advance(UNPAID_HOLD_LIMIT + MINUTE)
    for _ in range(ADDRESSES - 1):
        await _paid(world)

    reports = await asyncio.gather(*(world.complete(i) for i in invoices))
    await world.run_jobs()

    assert all(r.completed for r in reports)
    setup = [vm for vm in late if (await world.sub(vm)).is_setup]
    assert len(setup) == 1
    [credited] = [vm for vm in late if vm not in setup]
    assert world.host_state(setup[0].id) is not None
    assert world.host_state(credited.id) is None
    assert len(await _ips(world)) == ADDRESSES
    assert f"no IPv4 address left for VM {credited.id}" in _admin_notice(world)


async def test_a_payment_reviving_a_deleted_vm_needs_an_address_again(world: World) -> None:
    """A deleted VM's address went back to the pool: the late renewal that would re-create
    it needs one as a new VM does, and becomes credit when others took them all."""
    vm = await _paid(world)
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + MINUTE)
    await world.lifecycle()  # stopped
    world.at(sub.expires + 7 * DAY - 5 * MINUTE)
    renewal = await world.renew(vm)
    world.at(sub.expires + 7 * DAY + MINUTE)
    await world.lifecycle()  # deleted, its address released
    assert (await world.shop.vm(vm.id)).deleted and await _ips(world) == []
    others = [await _paid(world) for _ in range(ADDRESSES)]
    before = await world.sub(vm)

    assert (await world.complete(renewal)).completed
    await world.run_jobs()

    assert (await world.shop.vm(vm.id)).deleted and world.host_state(vm.id) is None
    assert await world.sub(vm) == before
    paid = await world.shop.payment(renewal.id)
    assert paid.is_paid and payment_meta(paid)[CREDIT_KEY]["mode"] == "unrestorable"
    assert f"region 1 has no IPv4 address left for VM {vm.id}" in _admin_notice(world)
    assert all(world.host_state(other.id) is not None for other in others)
