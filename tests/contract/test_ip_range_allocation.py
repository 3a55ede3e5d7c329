"""IP ranges are given when paid, sold once, held through the grace, on memory, SQLite, MariaDB."""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import timedelta
from typing import Any

import attrs
import pytest

from app.admin.catalogue_common import InUse
from app.admin.ip_space import delete_space
from app.billing import ip_purchase
from app.billing.completion import CompletionReport, complete_payment
from app.billing.ip_purchase import (
    IpRangeItem,
    IpSpaceUnavailable,
    NewSubscription,
    create_subscription,
)
from app.billing.ip_room import NoIpRangeLeft
from app.billing.reserved import UNPAID_HOLD_LIMIT
from app.queries.subscriptions import list_subscription_ranges
from domain.credit import CreditMode
from domain.enums import InternetRegistry
from domain.model import (
    AvailableIpSpace,
    IpRangeSubscription,
    IpSpacePricing,
    LineItem,
    Subscription,
    SubscriptionPayment,
    User,
)
from domain.unpaid_ip_room import NO_UNPAID_IP_LIMITS
from ports.storage import UnitOfWorkFactory
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import engine_on, sql_factory
from tests.contract.storage_backends import Database
from tests.unit.worker.world import DAY, World

# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database
# pytest fixture: the worker world over this module's backend
world = lifecycle_world.world

RUN = timedelta(seconds=30)
IN_USE = "Cannot delete IP space with active subscriptions. Please cancel subscriptions first."


async def _space(world: World, cidr: str = "198.51.100.0/24", prefix: int = 24) -> int:
    """A space of `cidr` sold in `/prefix` blocks at EUR 10.00 a month; the pricing's id."""
    now = world.now
    net = ipaddress.ip_network(cidr)
    async with world.shop.factory() as uow:
        space = await uow.ip_spaces.add(
            AvailableIpSpace(
                id=0,
                company_id=1,
                cidr=cidr,
                min_prefix_size=prefix,
                max_prefix_size=net.prefixlen,
                registry=InternetRegistry.RIPE,
                created=now,
                updated=now,
            )
        )
        tier = await uow.ip_space_pricing.add(
            IpSpacePricing(
                id=0,
                available_ip_space_id=space.id,
                prefix_size=prefix,
                price_per_month=1000,
                created=now,
                updated=now,
                currency="EUR",
            )
        )
        await uow.commit()
    return tier.id


async def _order(world: World, tier: int, user: int = 1) -> tuple[Subscription, LineItem]:
    """An order of one block, without D25's caps on unpaid orders (tested on their own in
    `test_unpaid_ip_room`): these tests sell whole spaces to unpaid orders."""
    sub, [item] = await create_subscription(
        world.shop.factory,
        world.clock,
        user,
        NewSubscription(line_items=(IpRangeItem(ip_space_pricing_id=tier),)),
        max_unpaid=None,
        unpaid_ip=NO_UNPAID_IP_LIMITS,
    )
    return sub, item


async def _pay(world: World, sub: Subscription) -> CompletionReport:
    return await world.complete(await world.renew(subscription_id=sub.id))


async def _ranges(world: World, item: LineItem) -> list[IpRangeSubscription]:
    async with world.shop.factory() as uow:
        return await uow.ip_range_subscriptions.list_by_line_item(item.id)


async def _sub(world: World, sub: Subscription) -> Subscription:
    async with world.shop.factory() as uow:
        found = await uow.subscriptions.get(sub.id)
    assert found is not None
    return found


async def _space_of(world: World, tier: int) -> AvailableIpSpace:
    async with world.shop.factory() as uow:
        pricing = await uow.ip_space_pricing.get(tier)
        assert pricing is not None
        space = await uow.ip_spaces.get(pricing.available_ip_space_id)
    assert space is not None
    return space


async def _edit_space(world: World, tier: int, **changes: Any) -> None:
    """What an admin's PATCH of the space writes."""
    space = await _space_of(world, tier)
    async with world.shop.factory() as uow:
        await uow.ip_spaces.update(attrs.evolve(space, **changes))
        await uow.commit()


async def _users(world: World, count: int) -> list[int]:
    async with world.shop.factory() as uow:
        ids = [
            (await uow.users.add(User(id=0, pubkey=bytes([0x40 + n]) * 32, created=world.now))).id
            for n in range(count)
        ]
        await uow.commit()
    return ids


@pytest.mark.parametrize(
    ("cidr", "prefix"), [("198.51.100.0/24", 26), ("2001:db8::/40", 48)], ids=["ipv4", "ipv6"]
)
async def test_a_paid_ip_range_is_given_a_free_block_of_its_space(
    world: World, cidr: str, prefix: int
) -> None:
    """The reference took the money and allocated nothing (api.md §6.10): each first payment
    now gives its line item a block of the size sold, inside the space, overlapping no
    other; the user API lists it with the space's CIDR."""
    tier = await _space(world, cidr, prefix)
    space = ipaddress.ip_network(cidr)
    given = []
    for user in (1, 2):
        sub, item = await _order(world, tier, user)
        assert await _ranges(world, item) == []  # nothing is given before payment
        paid_at = world.now
        assert (await _pay(world, sub)).completed
        [sold] = await _ranges(world, item)
        block = ipaddress.ip_network(sold.cidr)
        assert block.prefixlen == prefix and block.subnet_of(space)  # type: ignore[arg-type]
        assert sold.is_active and sold.ended_at is None and sold.started_at == paid_at
        given.append(block)
        async with world.shop.factory() as uow:
            page = await list_subscription_ranges(uow, sub.id, user, 10, 0)
        assert [(v.record.cidr, v.parent_cidr) for v in page.items] == [(sold.cidr, cidr)]
        world.advance(timedelta(minutes=1))
    assert not given[0].overlaps(given[1])


async def test_one_block_is_sold_once(world: World) -> None:
    """(r2 proof) Two users each bought THE one /24 of a /24 space and paid; neither got a
    range. Now the second order is refused while the first holds the block, and stays
    refused once the first is paid."""
    tier = await _space(world)
    first, item = await _order(world, tier, 1)
    with pytest.raises(NoIpRangeLeft, match="No free /24 range is left in this IP space"):
        await _order(world, tier, 2)
    assert (await _pay(world, first)).completed
    assert [r.cidr for r in await _ranges(world, item)] == ["198.51.100.0/24"]
    with pytest.raises(NoIpRangeLeft):
        await _order(world, tier, 2)


async def test_an_order_runs_again_holding_a_space_listed_over_its_own_meanwhile(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator lists a space overlapping the order's after the order looked up which
    spaces to lock, before its transaction: the order finds it must hold that space's lock
    too (its blocks are judged beside that space's) and runs again with both."""
    tier = await _space(world)
    look_up, create = ip_purchase._spaces_of, ip_purchase._create
    runs: list[frozenset[int]] = []

    async def then_listed(*args: Any) -> frozenset[int]:
        spaces = await look_up(*args)
        await _space(world, "198.51.100.0/25", 26)
        return spaces

    async def recorded(*args: Any) -> tuple[Subscription, list[LineItem]]:
        runs.append(args[-1])
        return await create(*args)

    monkeypatch.setattr(ip_purchase, "_spaces_of", then_listed)
    monkeypatch.setattr(ip_purchase, "_create", recorded)
    sub, _ = await _order(world, tier)

    own = (await _space_of(world, tier)).id
    assert runs == [{own}, {own, own + 1}]
    async with world.shop.factory() as uow:  # the first run stored nothing
        assert [s.id for s in (await uow.subscriptions.list_by_user(1, 10)).items] == [sub.id]


async def test_an_unpaid_order_holds_its_block_for_its_payment_window_only(world: World) -> None:
    """As a VM order holds its host's room (D25): an hour, or while an invoice asked for in
    that hour is pending, never past the hold limit."""
    tier = await _space(world)
    await _order(world, tier, 1)
    world.advance(timedelta(minutes=59))
    with pytest.raises(NoIpRangeLeft):
        await _order(world, tier, 2)
    world.advance(timedelta(minutes=2))  # the window is over and no invoice was asked for
    late, _ = await _order(world, tier, 2)
    world.advance(timedelta(minutes=59))
    await world.renew(subscription_id=late.id)  # an invoice keeps its hold past the hour
    world.advance(timedelta(minutes=2))
    with pytest.raises(NoIpRangeLeft):
        await _order(world, tier, 1)
    world.advance(UNPAID_HOLD_LIMIT)
    await _order(world, tier, 1)


async def test_a_payment_finding_no_free_block_becomes_credit_and_the_admins_are_told(
    world: World,
) -> None:
    """A race the order's hold cannot prevent (here an operator's hand-made range took the
    whole space): the payment buys no time, its value is the payer's account credit, the
    payer and the admins are told, and nothing is allocated."""
    tier = await _space(world)
    sub, item = await _order(world, tier, 1)
    quote = await world.renew(subscription_id=sub.id)
    space = await _space_of(world, tier)
    taker, _ = await world.ip_range_subscription("198.51.100.0/24")
    async with world.shop.factory() as uow:
        [taken] = await uow.ip_range_subscriptions.list_by_line_item(
            (await uow.line_items.list_by_subscription(taker.id))[0].id
        )
        await uow.ip_range_subscriptions.update(attrs.evolve(taken, available_ip_space_id=space.id))
        await uow.commit()

    report = await world.complete(quote)
    await world.run_jobs()

    assert report.completed and report.event is not None
    credit = report.event.credit
    assert credit is not None and credit.mode is CreditMode.UNRESTORABLE
    assert await _ranges(world, item) == []
    after = await _sub(world, sub)
    assert (after.is_active, after.is_setup, after.expires) == (False, False, None)
    async with world.shop.factory() as uow:
        assert (await uow.credit_ledger.balances(1)).get("EUR", 0) > 0
        paid = await uow.payments.get(quote.id)
    assert paid is not None and paid.is_paid and paid.time_value == 0
    [admins] = world.notifier.titled(
        f"[Subscription {sub.id}] Payment for an IP range that could not be given"
    )
    assert "no free /24 block is left in IP space 198.51.100.0/24" in admins.message
    [user] = world.notifier.titled(f"[Subscription {sub.id}] Payment added to your account credit")
    assert "IP range it pays for could not be given" in user.message


async def _complete_all(
    factory: UnitOfWorkFactory, world: World, quotes: list[SubscriptionPayment]
) -> list[CompletionReport | BaseException]:
    return await asyncio.gather(
        *(
            complete_payment(factory, world.clock, world.shop.rails, world.queue, payment_id=q.id)
            for q in quotes
        ),
        return_exceptions=True,
    )


async def test_first_payments_racing_for_the_last_block_get_it_once(
    world: World, database: Database
) -> None:
    """Four orders of a /22 each held a /24; the operator then shrank the space to its first
    /24 and all four are paid at once (on MariaDB each on its own connection): exactly one
    is given the block, the other three are booked as credit."""
    tier = await _space(world, "198.51.100.0/22", 24)
    orders = [await _order(world, tier, user) for user in await _users(world, 4)]
    quotes = [await world.renew(subscription_id=sub.id) for sub, _ in orders]
    await _edit_space(world, tier, cidr="198.51.100.0/24")

    if database.url is None:
        results = await _complete_all(world.shop.factory, world, quotes)
    else:
        async with engine_on(database) as engine:
            results = await _complete_all(sql_factory(engine), world, quotes)

    reports = [r for r in results if isinstance(r, CompletionReport)]
    assert len(reports) == 4 and all(r.completed for r in reports), results
    credited = [r for r in reports if r.event and r.event.credit and r.event.credit.seconds == 0]
    assert len(credited) == 3
    given = [r.cidr for _, item in orders for r in await _ranges(world, item)]
    assert given == ["198.51.100.0/24"]


async def test_a_renewal_turns_back_on_only_the_range_this_lapse_ended(world: World) -> None:
    """(r2 proof) A line item with a range ended long before (moved, or ended by an
    operator) and its current one: a renewal turned both on, two ranges for one price."""
    sub, current = await world.ip_range_subscription("203.0.113.8/29")
    async with world.shop.factory() as uow:
        await uow.ip_range_subscriptions.add(
            IpRangeSubscription(
                id=0,
                subscription_line_item_id=current.subscription_line_item_id,
                available_ip_space_id=1,
                created=world.now - 400 * DAY,
                cidr="203.0.113.16/29",
                is_active=False,
                started_at=world.now - 400 * DAY,
                ended_at=world.now - 300 * DAY,
            )
        )
        await uow.commit()

    async def active() -> list[str]:
        async with world.shop.factory() as uow:
            rows = await uow.ip_range_subscriptions.list_by_line_item(
                current.subscription_line_item_id
            )
        return [r.cidr for r in rows if r.is_active]

    await _pay(world, sub)
    assert await active() == ["203.0.113.8/29"]
    expires = (await _sub(world, sub)).expires
    assert expires is not None
    world.at(expires + timedelta(seconds=1))
    await world.lifecycle(runs=2, step=RUN)
    assert await active() == []  # ended at expiry, within the grace
    world.advance(DAY)
    await _pay(world, sub)
    assert await active() == ["203.0.113.8/29"]


async def _lapse_past_grace(world: World, sub: Subscription) -> None:
    """The subscription expires, its range ends, and it is cancelled after its grace."""
    expires = (await _sub(world, sub)).expires
    assert expires is not None
    world.at(expires + timedelta(seconds=1))
    await world.lifecycle(runs=2, step=RUN)
    world.at(expires + 40 * DAY)
    await world.lifecycle(runs=2, step=RUN)
    assert not (await _sub(world, sub)).is_active


@pytest.mark.parametrize("blocks", [1, 2])
async def test_a_block_given_to_someone_else_is_never_turned_back_on(
    world: World, blocks: int
) -> None:
    """A holder's block is kept through its grace period; once it is cancelled the block may
    go to another buyer, and a late payment of the old holder (D24) never takes it back: it
    is given another free block, or, with none left, its value as credit."""
    cidr = "198.51.100.0/24" if blocks == 1 else "198.51.100.0/23"
    tier = await _space(world, cidr)
    a, a_item = await _order(world, tier, 1)
    await _pay(world, a)
    stale = await world.renew(subscription_id=a.id)
    expires = (await _sub(world, a)).expires
    assert expires is not None
    world.at(expires + timedelta(seconds=1))
    await world.lifecycle(runs=2, step=RUN)
    [ended] = await _ranges(world, a_item)
    assert not ended.is_active  # stopped at expiry, still held within the grace:
    if blocks == 1:
        with pytest.raises(NoIpRangeLeft):
            await _order(world, tier, 2)
    await _lapse_past_grace(world, a)

    b, b_item = await _order(world, tier, 2)
    await _pay(world, b)
    assert [r.cidr for r in await _ranges(world, b_item)] == [ended.cidr]

    report = await world.complete(stale)
    assert report.completed and report.event is not None
    a_rows = await _ranges(world, a_item)
    assert [r.cidr for r in await _ranges(world, b_item) if r.is_active] == [ended.cidr]
    assert not any(r.is_active and r.cidr == ended.cidr for r in a_rows)
    credit = report.event.credit
    if blocks == 1:
        assert credit is not None and credit.mode is CreditMode.UNRESTORABLE
        assert [r.is_active for r in a_rows] == [False]
    else:
        assert [(r.cidr, r.is_active) for r in a_rows] == [
            (ended.cidr, False),
            ("198.51.101.0/24", True),
        ]
        assert (await _sub(world, a)).is_active


@pytest.mark.parametrize("withdrawn", [{"is_available": False}, {"is_reserved": True}])
async def test_a_space_withdrawn_after_a_sale_renews_its_holders_and_sells_no_more(
    world: World, withdrawn: dict[str, bool]
) -> None:
    tier = await _space(world, "198.51.100.0/23")
    holder, item = await _order(world, tier, 1)
    await _pay(world, holder)
    waiting, _ = await _order(world, tier, 2)
    await _edit_space(world, tier, **withdrawn)

    with pytest.raises(IpSpaceUnavailable):
        await _order(world, tier, 2)
    with pytest.raises(NoIpRangeLeft, match="is not available for allocation"):
        await world.renew(subscription_id=waiting.id)  # a new sale: refused at its quote
    [sold] = await _ranges(world, item)
    expires = (await _sub(world, holder)).expires
    assert expires is not None
    world.at(expires + timedelta(seconds=1))
    await world.lifecycle(runs=2, step=RUN)
    assert not (await _ranges(world, item))[0].is_active
    assert (await _pay(world, holder)).completed  # the holder renews within its grace
    assert [(r.id, r.cidr, r.is_active) for r in await _ranges(world, item)] == [
        (sold.id, sold.cidr, True)
    ]


@pytest.mark.parametrize(
    ("asks", "why"),
    [
        ({"available_ip_space_id": 999, "prefix_size": 26}, "IP space 999 no longer exists"),
        ({"prefix_size": 8}, "IP space 198.51.100.0/24 cannot hold a /8 block"),
    ],
    ids=["space-gone", "size-too-big"],
)
async def test_an_order_asking_what_no_space_can_give_is_refused_at_its_quote_saying_why(
    world: World, asks: dict[str, int], why: str
) -> None:
    """An order's line item naming a space since gone, or a size its space cannot hold
    (written by hand): its quote is refused with the reason, nothing is asked for."""
    tier = await _space(world, prefix=26)
    sub, item = await _order(world, tier)
    async with world.shop.factory() as uow:
        assert isinstance(item.configuration, dict)
        changed = attrs.evolve(item, configuration={**item.configuration, **asks})
        await uow.line_items.update(changed)
        await uow.commit()

    with pytest.raises(NoIpRangeLeft, match=f"^This IP range cannot be sold now: {why}$"):
        await world.renew(subscription_id=sub.id)
    async with world.shop.factory() as uow:
        assert (await uow.payments.list_by_subscription(sub.id, 10)).total == 0


async def test_an_ip_space_is_not_deleted_under_a_live_subscription(world: World) -> None:
    """(r2 proof) The delete checked only active range rows: a space went while paid
    subscriptions were sold from it, and they went on being billed for it."""
    tier = await _space(world)
    space = await _space_of(world, tier)
    sub, item = await _order(world, tier, 1)
    await _pay(world, sub)
    with pytest.raises(InUse, match=IN_USE):
        await delete_space(world.shop.factory, space.id)
    expires = (await _sub(world, sub)).expires
    assert expires is not None
    world.at(expires + timedelta(seconds=1))
    await world.lifecycle(runs=2, step=RUN)  # expired: the range ended, still renewable
    assert not (await _ranges(world, item))[0].is_active
    with pytest.raises(InUse, match=IN_USE):
        await delete_space(world.shop.factory, space.id)
    async with world.shop.factory() as uow:
        assert await uow.ip_spaces.get(space.id) is not None


async def test_orders_racing_for_the_last_free_block_accept_one(
    world: World, database: Database
) -> None:
    """Each order counts what the space holds under its lock (on MariaDB each order on its
    own connection): one of four is accepted and holds the block, the rest are refused."""
    tier = await _space(world)
    users = await _users(world, 4)

    async def race(factory: UnitOfWorkFactory) -> list[object]:
        return await asyncio.gather(
            *(
                create_subscription(
                    factory,
                    world.clock,
                    user,
                    NewSubscription(line_items=(IpRangeItem(ip_space_pricing_id=tier),)),
                    unpaid_ip=NO_UNPAID_IP_LIMITS,
                )
                for user in users
            ),
            return_exceptions=True,
        )

    if database.url is None:
        results = await race(world.shop.factory)
    else:
        async with engine_on(database) as engine:
            results = await race(sql_factory(engine))
    refused = [r for r in results if isinstance(r, NoIpRangeLeft)]
    made = [r for r in results if isinstance(r, tuple)]
    assert (len(made), len(refused)) == (1, 3), results
