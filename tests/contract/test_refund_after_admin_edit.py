"""A refund after an admin gave the refunded time back is a refund of its own, on memory, SQLite
and MariaDB: an admin refunds a VM's unused time (its expiry cut to now), then sets `expires`
back to the very second the refund started from, and refunds again. The second refund has
another key than the first (a refund to credit is booked, not taken for a replay of the first;
a refund by hand's notice names a reference the admins have not paid), while a repeat of the
same request still has the same key and two racing refunds still pay once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest

from app.admin.refund_record import AlreadyRefunded
from app.admin.subscriptions import SubscriptionPatch, update_subscription
from app.billing.credit_balance import Booked
from domain.model import Vm
from ports.jobs import SendAdminNotification
from tests.contract import lifecycle_world, storage_backends
from tests.contract.refunds import (
    UNUSED,
    RefundPath,
    by_hand,
    by_hand_value,
    credited,
    paid_vm,
    race,
    records,
    to_credit,
)
from tests.unit.billing.world import Shop

database = storage_backends.database
shop = lifecycle_world.shop

#: the refund paths that record a refund (the GET figure records nothing)
RECORDING_PATHS = pytest.mark.parametrize(
    "first", [credited, by_hand_value], ids=["to-credit", "by-hand"]
)


async def _expires(shop: Shop, vm: Vm) -> datetime:
    expires = (await shop.subscription(vm)).expires
    assert expires is not None
    return expires


async def _given_back(shop: Shop, first: RefundPath, later: timedelta) -> tuple[Vm, datetime]:
    """ALICE's month paid, 4 days used, refunded (`first`: the expiry cut to now), then the
    admin sets `expires` back to where it was before the refund; `later` passes."""
    vm = await paid_vm(shop)
    expires = await _expires(shop, vm)
    assert await first(shop, vm) == UNUSED
    assert await _expires(shop, vm) == shop.clock.now()
    sub = await shop.subscription(vm)
    await update_subscription(
        shop.factory, sub.id, SubscriptionPatch(expires=expires), clock=shop.clock, rails=None
    )
    assert await _expires(shop, vm) == expires
    shop.clock.advance(later)
    return vm, expires


def _refund_notices(shop: Shop) -> list[str]:
    return [
        job.message
        for job in shop.queue.sent
        if isinstance(job, SendAdminNotification) and "Refund requested" in (job.title or "")
    ]


@RECORDING_PATHS
@pytest.mark.parametrize("later", [timedelta(0), timedelta(hours=1)], ids=["same-second", "1h"])
async def test_a_refund_to_credit_of_time_given_back_is_booked(
    shop: Shop, first: RefundPath, later: timedelta
) -> None:
    """The second refund books its own credit (not the first's answered as a replay, which
    booked nothing, cut nothing and recorded nothing) and cuts the time given back."""
    vm, _ = await _given_back(shop, first, later)
    before = await shop.balance()

    second = await to_credit(shop, vm)

    assert not second.replayed and second.entry.amount > 0
    assert await shop.balance() == before + second.entry.amount
    assert await _expires(shop, vm) == shop.clock.now()
    newer, older = await records(shop, vm)
    assert newer["kind"] == "credit" and newer["reference"] != older["reference"]
    assert second.entry.reference == newer["reference"]


@RECORDING_PATHS
@pytest.mark.parametrize("later", [timedelta(0), timedelta(hours=1)], ids=["same-second", "1h"])
async def test_a_refund_by_hand_of_time_given_back_has_its_own_reference(
    shop: Shop, first: RefundPath, later: timedelta
) -> None:
    """The admins pay each reference once: the second refund's record, notice and notice
    mark name another reference than the first's."""
    vm, _ = await _given_back(shop, first, later)
    shop.queue.sent.clear()

    await by_hand(shop, vm)

    newer, older = await records(shop, vm)
    assert newer["kind"] == "manual" and newer["reference"] != older["reference"]
    [notice] = _refund_notices(shop)
    assert f"Refund reference: {newer['reference']} " in notice
    assert str(older["reference"]) not in notice


async def test_a_repeat_after_the_time_was_given_back_and_refunded_again_is_refused(
    shop: Shop,
) -> None:
    """The second refund cut the time given back: a repeat of it finds nothing left, 409."""
    vm, _ = await _given_back(shop, credited, timedelta(hours=1))
    await to_credit(shop, vm)
    balance = await shop.balance()

    with pytest.raises(AlreadyRefunded):
        await to_credit(shop, vm)

    assert await shop.balance() == balance
    assert len(await records(shop, vm)) == 2


@pytest.mark.parametrize(
    "refunds",
    [(to_credit, to_credit), (by_hand, by_hand), (to_credit, by_hand)],
    ids=["credit-credit", "hand-hand", "credit-hand"],
)
async def test_racing_refunds_of_time_given_back_pay_once(
    shop: Shop, refunds: tuple[Refunder, Refunder]
) -> None:
    """Two refunds of the time given back, at once: one is recorded (booked once, or told
    once), the other refused (a refund by hand repeated before its notice was recorded
    answers with that one notice, as `refunded_once` says)."""
    vm, _ = await _given_back(shop, credited, timedelta(hours=1))
    balance = await shop.balance()
    shop.queue.sent.clear()

    results = await race(shop, *(_on(refund, vm) for refund in refunds))

    refused = [r for r in results if isinstance(r, BaseException)]
    answers = [r for r in results if not isinstance(r, BaseException)]
    assert all(isinstance(r, AlreadyRefunded) for r in refused), results
    newer, older = await records(shop, vm)
    assert older["kind"] == "credit" and newer["reference"] != older["reference"]
    if newer["kind"] == "credit":
        [booked] = answers
        assert isinstance(booked, Booked)
        assert await shop.balance() == balance + booked.entry.amount
        assert _refund_notices(shop) == []
    else:
        assert await shop.balance() == balance
        [notice] = _refund_notices(shop)
        assert str(newer["reference"]) in notice
        assert len(set(answers)) == 1
    assert await _expires(shop, vm) == shop.clock.now()


Refunder = Callable[[Shop, Vm], Awaitable[object]]


def _on(refund: Refunder, vm: Vm) -> Callable[[Shop], Awaitable[object]]:
    async def run(shop: Shop) -> object:
        return await refund(shop, vm)

    return run
