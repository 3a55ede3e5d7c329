"""Lapsed card orders on memory, SQLite and MariaDB: cancelled at their provider once, after
the grace, never when paid, retried after an outage; the CheckSubscriptions job runs it. One
paid there is completed (a refusal reported to the admins, a passing failure retried, never
given up) unless it lapsed too long ago: then it is reported only."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from app.billing.credit_quote import CreditChanged
from app.billing.errors import PaymentProviderUnavailable
from app.billing.lapsed_orders import (
    COMPLETE_WITHIN,
    CURSOR,
    GRACE,
    MAX_ATTEMPTS,
    Complete,
    LapsedOrders,
)
from app.billing.rails import FIAT_EXPIRY
from app.settlement_retries import MAX_STRIKES
from app.worker.jobs import QueuedNotifier
from domain.enums import PaymentMethod
from domain.errors import DomainError
from domain.intervals import add_months
from domain.model import SubscriptionPayment, Vm
from ports.jobs import CheckSubscriptions
from ports.storage import StorageBusy
from tests.contract import lifecycle_world, storage_backends
from tests.unit.worker.world import World

database = storage_backends.database
SECOND = timedelta(seconds=1)


class RefusedByRule(DomainError):
    """A refusal no retry cures (kind "unprocessable"); a "conflict" is retried first.

    A test double: no real refusal for good reaches the sweep's completion of a card order.
    `complete_payment`'s own are `ShortSettlement` (only with a Lightning node's received
    amount, which a card order has none of), `PaymentNotFound` (payment rows are never
    deleted, and the sweep read this one) and a credit-only upgrade's refusals (conflicts,
    and a card order brought outside money); a VM it cannot place, or a price it cannot
    compute, is booked as account credit instead of refused. Only a broken row (a negative
    `time_value`) or a credit beyond what one ledger entry holds would raise one, and no
    test world makes either."""


world = lifecycle_world.world_with_rails("order_rails")


def sweeper(world: World, batch: int = 100, **kw: Any) -> LapsedOrders:
    return LapsedOrders(world.shop.factory, world.clock, world.shop.rails, batch=batch, **kw)


async def card_quote(world: World, vm: Vm, intervals: int = 1) -> SubscriptionPayment:
    """A Revolut renewal quote (a new one for each `intervals`, D10) its provider says is
    unpaid."""
    payment = await world.shop.renew(vm, method=PaymentMethod.REVOLUT, intervals=intervals)
    assert payment.external_id is not None
    world.shop.revolut.unpaid.add(payment.external_id)
    return payment


async def paid_there(world: World, vm: Vm, intervals: int = 1) -> SubscriptionPayment:
    """A card quote its provider says is paid, unpaid here: its webhook was lost (or is not
    in yet)."""
    payment = await card_quote(world, vm, intervals)
    world.shop.revolut.unpaid.discard(payment.external_id or "")
    return payment


async def test_a_lapsed_card_order_is_cancelled_once_after_the_grace(world: World) -> None:
    vm = await world.paid_vm()
    quote = await card_quote(world, vm)
    lightning = await world.renew(vm)  # a Lightning invoice expires at the node by itself
    sweep = sweeper(world)

    world.advance(FIAT_EXPIRY - SECOND)
    assert await sweep.run() == 0  # still payable
    world.advance(GRACE)
    assert await sweep.run() == 0  # lapsed, but the provider's own expiry goes first
    world.advance(2 * SECOND)
    assert await sweep.run() == 1
    assert world.shop.revolut.cancelled == [quote.external_id]

    world.advance(timedelta(hours=1))
    assert await sweep.run() == 0
    assert await sweeper(world).run() == 0  # another worker (or a restart): not again
    assert world.shop.revolut.cancelled == [quote.external_id]
    assert world.shop.node.cancelled == []
    assert lightning.payment_method is PaymentMethod.LIGHTNING
    assert not (await world.shop.payment(quote.id)).is_paid


async def test_a_paid_order_is_never_cancelled(world: World) -> None:
    vm = await world.paid_vm()
    completed = await card_quote(world, vm)
    await world.complete(completed)  # paid and completed here
    await paid_there(world, vm, intervals=2)  # its webhook not in yet

    world.advance(FIAT_EXPIRY + GRACE + SECOND)
    assert await sweeper(world).run() == 1  # the one the provider says is paid: left alone
    assert world.shop.revolut.cancelled == []
    assert (await world.shop.payment(completed.id)).is_paid


async def test_an_outage_is_retried_next_pass_without_skipping(world: World) -> None:
    vm = await world.paid_vm()
    first = await card_quote(world, vm)
    world.advance(timedelta(minutes=10))
    second = await card_quote(world, vm, intervals=2)
    sweep = sweeper(world)

    world.advance(FIAT_EXPIRY + GRACE + SECOND)
    world.shop.revolut.down = True
    assert await sweep.run() == 0
    assert await sweep.run() == 0
    world.shop.revolut.down = False
    world.advance(timedelta(minutes=1))
    assert await sweep.run() == 2
    assert world.shop.revolut.cancelled == [first.external_id, second.external_id]


async def test_an_order_that_always_fails_is_given_up_and_the_rest_go_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    vm = await world.paid_vm()
    broken = await card_quote(world, vm)
    world.shop.revolut.failing.add(broken.external_id or "")
    world.advance(timedelta(minutes=10))
    later = await card_quote(world, vm, intervals=2)
    sweep = sweeper(world, report=QueuedNotifier(world.queue).notify_admins)
    world.advance(FIAT_EXPIRY + GRACE + SECOND)

    for _ in range(MAX_ATTEMPTS - 1):
        assert await sweep.run() == 0  # tried again each pass, the later one waiting
    assert world.shop.revolut.cancelled == []
    with caplog.at_level(logging.ERROR, logger="app.billing.lapsed_orders"):
        assert await sweep.run() == 2  # given up (logged, reported), and the sweep goes on
    assert world.shop.revolut.cancelled == [later.external_id]
    # the log and the admins are told what was given up: cancelling that order, and why
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert line.startswith("OPERATOR: gave up cancelling")
    assert broken.id.hex() in line and str(broken.external_id) in line
    assert "could not cancel it" in line
    assert "503 from provider" in line  # the provider's words: the operator's, not a user's
    await world.run_jobs()
    (notice,) = notices_about(world, broken)
    assert str(broken.external_id) in notice and "gave up cancelling" in notice


async def test_small_batches_walk_the_whole_backlog(world: World) -> None:
    vm = await world.paid_vm()
    quotes = []
    for n in range(1, 6):
        quotes.append(await card_quote(world, vm, intervals=n))
        world.advance(timedelta(minutes=1))
    world.advance(FIAT_EXPIRY + GRACE)
    sweep = sweeper(world, batch=2)

    while await sweep.run():
        pass
    assert world.shop.revolut.cancelled == [q.external_id for q in quotes]
    async with world.shop.factory() as uow:
        position = await uow.worker_cursors.get(CURSOR)
    assert position == int((world.now - GRACE).timestamp())


async def test_the_subscription_check_job_sweeps_them(world: World) -> None:
    vm = await world.paid_vm()
    quote = await card_quote(world, vm)
    world.advance(FIAT_EXPIRY + GRACE + SECOND)
    await world.queue.send(CheckSubscriptions())
    await world.run_jobs()
    assert world.shop.revolut.cancelled == [quote.external_id]


async def test_more_than_a_batch_lapsing_in_one_second_are_all_cancelled_once(
    world: World,
) -> None:
    vm = await world.paid_vm()
    # same second (4: one subscription holds at most 5 live quotes, `MAX_LIVE_QUOTES`)
    quotes = [await card_quote(world, vm, intervals=n) for n in range(1, 5)]
    world.advance(timedelta(minutes=1))
    quotes.append(await card_quote(world, vm, intervals=5))
    world.advance(FIAT_EXPIRY + GRACE + SECOND)
    sweep = sweeper(world, batch=2)

    while await sweep.run():
        pass
    cancelled = world.shop.revolut.cancelled
    assert len(cancelled) == len(set(cancelled)) == 5
    assert set(cancelled) == {q.external_id for q in quotes}
    assert cancelled[-1] == quotes[-1].external_id


async def test_an_order_paid_at_its_provider_whose_webhook_was_lost_is_completed_once(
    world: World,
) -> None:
    vm = await world.paid_vm()
    before = (await world.sub(vm)).expires
    assert before is not None
    lost = await paid_there(world, vm)
    world.advance(FIAT_EXPIRY + GRACE + SECOND)

    for _ in range(2):  # the next check (or another worker) books nothing again
        await world.queue.send(CheckSubscriptions())
        world.advance(timedelta(minutes=10))
        await world.run_jobs()
    assert (await world.shop.payment(lost.id)).is_paid
    assert world.shop.revolut.cancelled == []
    assert (await world.sub(vm)).expires == add_months(before, 1)


def notices_about(world: World, payment: SubscriptionPayment) -> list[str]:
    """The admins' notices naming `payment` (delivered by the worker's jobs)."""
    return [n.message for n in world.notifier.to_admins() if payment.id.hex() in n.message]


def operator_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and r.getMessage().startswith("OPERATOR:")
    ]


async def paid_there_then_a_later_one(
    world: World, vm: Vm
) -> tuple[SubscriptionPayment, SubscriptionPayment]:
    """A card quote its provider says is paid (its webhook lost) and, ten minutes later,
    another one still unpaid there: the sweep meets the paid one first."""
    paid = await paid_there(world, vm)
    world.advance(timedelta(minutes=10))
    return paid, await card_quote(world, vm, intervals=2)


def completing(world: World, complete: Complete) -> LapsedOrders:
    """A sweep that completes with `complete` and reports to the admins through the queue."""
    return sweeper(world, complete=complete, report=QueuedNotifier(world.queue).notify_admins)


def raising(err: Exception, tried: list[bytes] | None = None) -> Complete:
    """A completion that always raises `err`, noting each payment it tried in `tried`."""

    async def complete(payment: SubscriptionPayment) -> object:
        if tried is not None:
            tried.append(payment.id)
        raise err

    return complete


def failing_first(world: World, errors: list[Exception]) -> Complete:
    """A completion that raises `errors` one a call (the last first), then completes."""

    async def complete(payment: SubscriptionPayment) -> object:
        if errors:
            raise errors.pop()
        return await world.complete(payment)

    return complete


def always_failing(world: World, err: Exception) -> tuple[LapsedOrders, list[bytes]]:
    """A sweep whose every completion raises `err`, and the payments it tried, in order."""
    tried: list[bytes] = []
    return completing(world, raising(err, tried)), tried


async def test_a_paid_order_whose_completion_is_refused_is_reported_and_the_sweep_goes_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    vm = await world.paid_vm()
    refused, later = await paid_there_then_a_later_one(world, vm)
    sweep, tried = always_failing(world, RefusedByRule("the upgrade can no longer be made"))
    world.advance(FIAT_EXPIRY + GRACE + SECOND)
    with caplog.at_level(logging.ERROR, logger="app.billing.lapsed_orders"):
        assert await sweep.run() == 2  # reported at once, and the later one cancelled
    assert tried == [refused.id]
    assert world.shop.revolut.cancelled == [later.external_id]  # the paid one never
    assert not (await world.shop.payment(refused.id)).is_paid
    (line,) = operator_lines(caplog)
    for part in (refused.id.hex(), "Revolut", str(refused.external_id), "can no longer"):
        assert part in line
    await world.run_jobs()
    (notice,) = notices_about(world, refused)
    assert str(refused.external_id) in notice and "can no longer" in notice

    world.advance(timedelta(hours=1))
    assert await sweep.run() == 0  # dealt with: not tried (nor reported) again
    assert tried == [refused.id]


async def test_a_paid_order_whose_completion_fails_for_now_is_retried_never_given_up(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    vm = await world.paid_vm()
    before = (await world.sub(vm)).expires
    assert before is not None
    paid, later = await paid_there_then_a_later_one(world, vm)
    outages: list[Exception] = [
        StorageBusy() if n % 2 else PaymentProviderUnavailable("rates down")
        for n in range(MAX_ATTEMPTS + 3)
    ]
    sweep = completing(world, failing_first(world, outages))
    world.advance(FIAT_EXPIRY + GRACE + SECOND)
    with caplog.at_level(logging.ERROR, logger="app.billing.lapsed_orders"):
        for _ in range(MAX_ATTEMPTS + 3):
            assert await sweep.run() == 0  # tried again each pass, never given up
            world.advance(timedelta(minutes=1))
    assert operator_lines(caplog) == []
    assert world.shop.revolut.cancelled == []  # the later one waits behind it
    assert not (await world.shop.payment(paid.id)).is_paid

    assert await sweep.run() == 2  # it went through: booked once, and the sweep goes on
    assert (await world.shop.payment(paid.id)).is_paid
    assert (await world.sub(vm)).expires == add_months(before, 1)
    assert world.shop.revolut.cancelled == [later.external_id]
    await world.run_jobs()
    assert notices_about(world, paid) == []


async def test_a_paid_order_whose_completion_keeps_failing_on_a_bug_is_reported_after_strikes(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug (or a broken row) on one paid order held up the sweep of every order behind it
    for as long as it lasted; it is reported after `MAX_STRIKES` passes and the sweep goes
    on."""
    vm = await world.paid_vm()
    broken, later = await paid_there_then_a_later_one(world, vm)
    sweep, tried = always_failing(world, KeyError("a column this code did not expect"))
    world.advance(FIAT_EXPIRY + GRACE + SECOND)
    with caplog.at_level(logging.ERROR, logger="app.billing.lapsed_orders"):
        for _ in range(MAX_STRIKES - 1):
            assert await sweep.run() == 0  # retried: it may be a passing clash
            world.advance(timedelta(minutes=1))
        assert operator_lines(caplog) == []
        assert world.shop.revolut.cancelled == []
        assert await sweep.run() == 2  # reported, and the later one cancelled
    assert len(tried) == MAX_STRIKES
    assert world.shop.revolut.cancelled == [later.external_id]
    assert not (await world.shop.payment(broken.id)).is_paid
    (line,) = operator_lines(caplog)
    assert broken.id.hex() in line and "KeyError" in line
    await world.run_jobs()
    (notice,) = notices_about(world, broken)
    assert "KeyError" in notice


async def test_a_paid_order_whose_completion_clashed_once_is_completed_next_pass(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    vm = await world.paid_vm()
    before = (await world.sub(vm)).expires
    assert before is not None
    paid = await paid_there(world, vm)
    clash = CreditChanged("the balance changed meanwhile")
    sweep = completing(world, failing_first(world, [clash]))
    world.advance(FIAT_EXPIRY + GRACE + SECOND)
    with caplog.at_level(logging.ERROR, logger="app.billing.lapsed_orders"):
        assert await sweep.run() == 0  # a conflict is not refused for good: tried again
        world.advance(timedelta(minutes=1))
        assert await sweep.run() == 1
    assert operator_lines(caplog) == []
    assert (await world.shop.payment(paid.id)).is_paid
    assert (await world.sub(vm)).expires == add_months(before, 1)
    await world.run_jobs()
    assert notices_about(world, paid) == []


async def test_an_old_order_paid_at_its_provider_is_reported_not_completed_nor_cancelled(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    vm = await world.paid_vm()
    before = (await world.sub(vm)).expires
    assert before is not None
    old = await paid_there(world, vm)  # says paid (or refunded since)
    world.advance(FIAT_EXPIRY + COMPLETE_WITHIN + timedelta(days=1))
    recent = await paid_there(world, vm, intervals=2)
    world.advance(FIAT_EXPIRY + GRACE + SECOND)

    # the first sweep after deploy, as the worker runs it
    with caplog.at_level(logging.ERROR, logger="app.billing.lapsed_orders"):
        await world.queue.send(CheckSubscriptions())
        await world.run_jobs()
    assert not (await world.shop.payment(old.id)).is_paid  # neither completed …
    assert world.shop.revolut.cancelled == []  # … nor cancelled
    assert (await world.shop.payment(recent.id)).is_paid  # the recent one is booked
    assert (await world.sub(vm)).expires == add_months(before, 2)  # for its 2 months only
    (line,) = operator_lines(caplog)
    for part in (old.id.hex(), "Revolut", str(old.external_id), "too old"):
        assert part in line
    (notice,) = notices_about(world, old)
    assert "too old to complete automatically" in notice and "by hand" in notice

    world.advance(timedelta(hours=1))
    await world.queue.send(CheckSubscriptions())
    await world.run_jobs()
    assert not (await world.shop.payment(old.id)).is_paid  # not booked later either
    assert len(notices_about(world, old)) == 1


async def test_a_paid_order_is_reported_again_when_the_report_fails(world: World) -> None:
    vm = await world.paid_vm()
    refused = await paid_there(world, vm)
    told: list[str] = []
    fails = [ConnectionError("queue down")]

    async def report(title: str, message: str) -> None:
        if fails:
            raise fails.pop()
        told.append(message)

    complete = raising(RefusedByRule("the upgrade can no longer be made"))
    sweep = sweeper(world, complete=complete, report=report)
    world.advance(FIAT_EXPIRY + GRACE + SECOND)
    assert await sweep.run() == 0  # not told: tried again next pass
    assert told == []
    assert await sweep.run() == 1
    assert len(told) == 1 and refused.id.hex() in told[0]
    assert await sweep.run() == 0
    assert len(told) == 1
