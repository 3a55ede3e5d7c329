"""Never-paid IP-range subscriptions cancelled after their hour, and which subscriptions every
storage read counts as never-paid orders, on memory, SQLite and MariaDB."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest

from app.lifecycle_codes import ACTION_CODES
from app.worker import unpaid_subscriptions
from app.worker.context import NEVER_PAID_LOOKBACK, WorkerDeps, never_paid_lookback
from app.worker.unpaid_subscriptions import cancel_never_paid_subscriptions
from domain.enums import SubscriptionType
from domain.intervals import add_months
from domain.model import LineItem, Subscription, SubscriptionPayment
from ports.storage import NEVER_PAID_CLEANUP, NeverPaidWindow
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import engine_on, sql_factory, worker_over
from tests.contract.storage_backends import Database, new_payment
from tests.unit.billing.world import START
from tests.unit.worker.world import World

SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database
# pytest fixture: the worker world over this module's backend
world = lifecycle_world.world


async def _state(world: World, sub_id: int, sold_id: int) -> tuple[Subscription, bool]:
    """The subscription and whether its IP range is active."""
    async with world.shop.factory() as uow:
        sub = await uow.subscriptions.get(sub_id)
        sold = await uow.ip_range_subscriptions.get(sold_id)
    assert sub is not None and sold is not None
    return sub, sold.is_active


async def _cleaned(world: World, sub_id: int) -> bool:
    async with world.shop.factory() as uow:
        sub = await uow.subscriptions.get(sub_id)
        assert sub is not None
        return await uow.lifecycle_marks.is_claimed(sub_id, NEVER_PAID_CLEANUP, sub.created)


async def _ip_order(world: World, made: datetime, *, paid: bool = False) -> Subscription:
    """A never-paid order of an IP range made at `made` (no range assigned), with a paid
    payment booked as credit if `paid`."""
    async with world.shop.factory() as uow:
        sub, _ = await uow.subscriptions.add_with_line_items(
            Subscription(
                id=0, user_id=1, company_id=1, name="IP range", created=made, currency="EUR"
            ),
            [
                LineItem(
                    id=0,
                    subscription_id=0,
                    subscription_type=SubscriptionType.IP_RANGE,
                    name="203.0.113.0/29",
                    amount=1000,
                )
            ],
        )
        if paid:
            await uow.payments.add(new_payment(sub, created=made, expires=made, is_paid=True))
        await uow.commit()
    return sub


@pytest.mark.parametrize(
    "state",
    [{}, {"expires": add_months(START, 1)}, {"is_setup": True}],
    ids=["never-paid", "given-time", "set-up"],
)
async def test_only_an_order_never_set_up_nor_given_time_is_read_as_never_paid(
    world: World, state: dict[str, Any]
) -> None:
    """One rule (`Subscription.in_service`'s negation) behind the VM reads (D25's per-user
    count, the host share) and the IP-range reads (held blocks, per-user count, the hourly
    cancel): an order an operator gave time without a payment, or one set up, is in none."""
    vm = await world.shop.order()
    vm_order, ip_order = await world.sub(vm), await _ip_order(world, world.now)
    async with world.shop.factory() as uow:
        for sub in (vm_order, ip_order):
            await uow.subscriptions.update(attrs.evolve(sub, **state))
        await uow.commit()

    since, now = world.now - HOUR, world.now + SECOND
    async with world.shop.factory() as uow:
        vms = await uow.vms.list_never_paid(user_id=vm.user_id)
        held = await uow.vms.spec_totals([vm.host_id], never_paid=True)
        every = await uow.vms.spec_totals([vm.host_id])
        orders = await uow.ip_range_subscriptions.never_paid_orders(since)
        counted = await uow.subscriptions.count_never_paid_ip_ranges(ip_order.user_id, since)
        listed = await uow.subscriptions.list_never_paid_ip_ranges(
            NeverPaidWindow(since=since, before=now, now=now), 10
        )

    never_paid = not state
    assert [v.id for v in vms] == ([vm.id] if never_paid else [])
    assert held == (every if never_paid else []) and every
    assert [(sub.id, [i.name for i in items]) for sub, items in orders] == (
        [(ip_order.id, ["203.0.113.0/29"])] if never_paid else []
    )
    assert counted == (1 if never_paid else 0)
    assert [sub.id for sub in listed] == ([ip_order.id] if never_paid else [])


def test_the_cleanup_mark_is_no_lifecycle_action_code() -> None:
    assert NEVER_PAID_CLEANUP not in ACTION_CODES.values()


async def test_a_never_paid_ip_range_subscription_is_cancelled_once_after_its_hour(
    world: World,
) -> None:
    sub, sold = await world.ip_range_subscription()
    vm = await world.shop.order()  # a never-paid VM order is the VM check's, not this one's

    world.at(sub.created + HOUR)  # strictly more than one hour
    assert await cancel_never_paid_subscriptions(world.deps) == []
    assert (await _state(world, sub.id, sold.id))[1]

    world.at(sub.created + HOUR + SECOND)
    assert await cancel_never_paid_subscriptions(world.deps) == [sub.id]
    after, active = await _state(world, sub.id, sold.id)
    assert not active and not after.is_active and after.expires is None  # its range freed
    async with world.shop.factory() as uow:
        ended = await uow.ip_range_subscriptions.get(sold.id)
    assert ended is not None and ended.ended_at == world.now
    assert await _cleaned(world, sub.id)
    assert await cancel_never_paid_subscriptions(world.deps) == []  # once
    assert not (await world.shop.vm(vm.id)).deleted
    assert world.notifier.sent == []  # no notice, as for a never-paid VM


async def test_a_pending_invoice_keeps_it_until_the_invoice_expires(world: World) -> None:
    sub, sold = await world.ip_range_subscription()
    world.at(sub.created + timedelta(minutes=55))
    invoice = await world.renew(subscription_id=sub.id)  # pending until created + 65 min

    world.at(sub.created + HOUR + SECOND)
    assert await cancel_never_paid_subscriptions(world.deps) == []
    world.at(invoice.expires - SECOND)
    assert await cancel_never_paid_subscriptions(world.deps) == []
    assert (await _state(world, sub.id, sold.id))[1]

    world.at(invoice.expires)  # pending means `expires > now`
    assert await cancel_never_paid_subscriptions(world.deps) == [sub.id]


async def test_a_subscription_with_a_paid_payment_is_never_cancelled(world: World) -> None:
    """A paid payment that set nothing up (booked as credit) is not an abandoned order."""
    sub, sold = await world.ip_range_subscription()
    invoice: SubscriptionPayment = await world.renew(subscription_id=sub.id)
    async with world.shop.factory() as uow:
        assert await uow.payments.mark_paid(invoice.id, world.now)
        await uow.commit()
    world.at(sub.created + 2 * HOUR)
    assert await cancel_never_paid_subscriptions(world.deps) == []
    assert (await _state(world, sub.id, sold.id))[1]
    assert not await _cleaned(world, sub.id)


async def test_a_late_payment_sets_a_cancelled_subscription_up_with_its_range(
    world: World,
) -> None:
    """The equivalent of a late payment bringing a deleted never-paid VM back (§13 item 7)."""
    sub, sold = await world.ip_range_subscription()
    invoice = await world.renew(subscription_id=sub.id)  # a 10-minute invoice, paid late
    world.advance(HOUR + SECOND)
    assert await cancel_never_paid_subscriptions(world.deps) == [sub.id]

    await world.complete(invoice)

    paid, active = await _state(world, sub.id, sold.id)
    assert paid.is_active and paid.is_setup and paid.expires == add_months(world.now, 1)
    assert active
    assert await cancel_never_paid_subscriptions(world.deps) == []


async def test_a_payment_completing_during_the_cleanup_is_never_lost(
    world: World, database: Database
) -> None:
    """The cleanup (on its own engine) and a late payment at once: whichever takes the
    subscription's lock first, it ends paid, set up, its range active, and is not cancelled
    afterwards."""
    subs = [await world.ip_range_subscription(f"203.0.113.{8 * n}/29") for n in range(3)]
    invoices = [await world.renew(subscription_id=sub.id) for sub, _ in subs]
    world.advance(HOUR + SECOND)

    async def race(other: WorkerDeps) -> None:
        await asyncio.gather(
            cancel_never_paid_subscriptions(other), *(world.complete(i) for i in invoices)
        )

    if database.url is None:
        await race(worker_over(world, world.shop.factory))
    else:
        async with engine_on(database) as engine:
            await race(worker_over(world, sql_factory(engine)))

    for sub, sold in subs:
        paid, active = await _state(world, sub.id, sold.id)
        assert paid.is_active and paid.is_setup and paid.expires is not None
        assert active
    assert await cancel_never_paid_subscriptions(world.deps) == []


async def test_two_workers_cancel_each_never_paid_subscription_once(
    world: World, database: Database
) -> None:
    subs = [(await world.ip_range_subscription(f"203.0.113.{8 * n}/29"))[0] for n in range(3)]
    world.advance(HOUR + SECOND)

    async def race(other: WorkerDeps) -> list[int]:
        a, b = await asyncio.gather(
            cancel_never_paid_subscriptions(world.deps), cancel_never_paid_subscriptions(other)
        )
        return a + b

    if database.url is None:
        done = await race(worker_over(world, world.shop.factory))
    else:
        async with engine_on(database) as engine:
            done = await race(worker_over(world, sql_factory(engine)))
    assert sorted(done) == [s.id for s in subs]


async def test_the_candidates_are_only_those_the_cleanup_cancels(world: World) -> None:
    """A paid one (booked as credit) is never cancelled, so it is no candidate: otherwise
    every run would read it first, for ever."""
    made = world.now
    paid = await _ip_order(world, made, paid=True)
    due = await _ip_order(world, made)
    world.at(made + 2 * HOUR)
    async with world.shop.factory() as uow:
        found = await uow.subscriptions.list_never_paid_ip_ranges(
            NeverPaidWindow(made, world.now - HOUR, world.now), 10
        )
    assert [s.id for s in found] == [due.id] and paid.id < due.id


async def test_more_than_a_batch_of_paid_ones_ahead_hold_no_due_one_back(world: World) -> None:
    made = world.now
    for _ in range(4):
        await _ip_order(world, made, paid=True)
    due = await _ip_order(world, made + SECOND)
    world.at(made + 2 * HOUR)
    assert await cancel_never_paid_subscriptions(world.deps, batch=3) == [due.id]


async def test_more_than_a_batch_that_fail_ahead_hold_no_due_one_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A candidate whose cancellation fails (a broken row, a bug) is tried again every run,
    and the run goes on past it to the ones behind."""
    made = world.now
    broken = {(await _ip_order(world, made)).id for _ in range(4)}
    due = [(await _ip_order(world, made + SECOND)).id for _ in range(4)]
    cancel = unpaid_subscriptions.cancel_never_paid
    tried: list[int] = []

    async def failing(deps: WorkerDeps, subscription_id: int) -> bool:
        tried.append(subscription_id)
        if subscription_id in broken:
            raise RuntimeError("broken row")
        return await cancel(deps, subscription_id)

    monkeypatch.setattr(unpaid_subscriptions, "cancel_never_paid", failing)
    world.at(made + 2 * HOUR)
    assert await cancel_never_paid_subscriptions(world.deps, batch=3) == due
    assert await cancel_never_paid_subscriptions(world.deps, batch=3) == []
    assert tried.count(min(broken)) == 2  # each run tries it again


async def test_a_backlog_drains_a_batch_a_run_oldest_first(world: World) -> None:
    made = world.now
    subs = [(await _ip_order(world, made + n * SECOND)).id for n in range(5)]
    world.at(made + 2 * HOUR)
    assert await cancel_never_paid_subscriptions(world.deps, batch=2) == subs[:2]
    assert await cancel_never_paid_subscriptions(world.deps, batch=2) == subs[2:4]
    assert await cancel_never_paid_subscriptions(world.deps, batch=2) == subs[4:]


async def test_an_order_made_before_the_lookback_is_left_as_it_is(world: World) -> None:
    """The scan reads the window only (`NEVER_PAID_LOOKBACK`): an order the worker did not
    reach within it is never cancelled."""
    made = world.now
    old = await _ip_order(world, made)
    recent = await _ip_order(world, made + SECOND)
    world.at(made + NEVER_PAID_LOOKBACK + SECOND)
    assert world.deps.never_paid_lookback == NEVER_PAID_LOOKBACK
    assert await cancel_never_paid_subscriptions(world.deps) == [recent.id]
    assert not await _cleaned(world, old.id)


def test_a_longer_bank_transfer_widens_the_lookback() -> None:
    assert never_paid_lookback(None) == never_paid_lookback(7) == NEVER_PAID_LOOKBACK
    assert never_paid_lookback(30) == NEVER_PAID_LOOKBACK + timedelta(days=23)
