"""Never-paid IP-range subscriptions cancelled after their hour, on memory, SQLite and MariaDB."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from app.worker.context import WorkerDeps
from app.worker.lifecycle import ACTION_CODES
from app.worker.unpaid_subscriptions import cancel_never_paid_subscriptions
from domain.intervals import add_months
from domain.model import Subscription, SubscriptionPayment
from ports.storage import NEVER_PAID_CLEANUP
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import engine_on, sql_factory, worker_over
from tests.contract.storage_backends import Database
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
