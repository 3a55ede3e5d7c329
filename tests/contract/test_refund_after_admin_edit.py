"""A refund after an admin set the expiry back, on memory, SQLite and MariaDB.

Time a refund took back is no payment's any more (`paid_periods.unused_time`): an admin who
refunds a VM's unused time and then sets `expires` back to where it was gives that time for
free, and a refund of it is refused (422) with nothing changed, on every path.

What a refund did not take back is still paid: a refund by hand from a later date takes back
only the time after it; once an admin sets the expiry back, a refund from now pays the paid
time before that date, exactly once, under its own key (the refunds of its period already
recorded are counted in it, `refund_record.refund_reference`): it is not taken for a replay
of the first refund (the admins pay each reference once). A repeat of it, and two racing
requests for it, still pay once.

The month bought is 31 Jan 12:00 → 28 Feb 12:00 (28 days at 132 cents), 4 days used
(`paid_vm`): it is 4 Feb 12:00."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from app.admin.refund_record import AlreadyRefunded, NothingToRefund
from app.admin.subscriptions import SubscriptionPatch, update_subscription
from app.admin.unused_worth import NO_PAID_TIME
from app.billing.credit_balance import Booked
from domain.model import Vm
from ports.jobs import SendAdminNotification
from tests.contract import lifecycle_world, storage_backends
from tests.contract.refunds import (
    GROSS,
    UNUSED,
    VAT,
    RefundPath,
    by_hand,
    by_hand_value,
    credited,
    figure,
    paid_vm,
    race,
    records,
    to_credit,
)
from tests.unit.billing.world import ALICE, BOB, Shop

database = storage_backends.database
shop = lifecycle_world.shop

#: the month's end, where the admin sets the expiry back to
END = datetime(2026, 2, 28, 12, tzinfo=UTC)
#: the first refund's later start: the refund by hand takes back 14 Feb → 28 Feb
LATER_START = datetime(2026, 2, 14, 12, tzinfo=UTC)
#: 14 Feb → 28 Feb: 14 of the 28 days, 132 × 14 / 28 = 66 exactly; its VAT 66 × 0.23 = 15.18 → 15
FIRST_VALUE, FIRST_GROSS = 66, 66 + 15
#: the admin's edit: `expires` back to END
LATER = pytest.mark.parametrize(
    "later", [timedelta(0), timedelta(hours=1)], ids=["same-second", "1h"]
)
#: the refund paths that record a refund (the GET figure records nothing), from now
RECORDING_PATHS = pytest.mark.parametrize(
    "first", [credited, by_hand_value], ids=["to-credit", "by-hand"]
)


def _left_value(later: timedelta) -> tuple[int, int]:
    """The value before tax and the gross (its VAT at 23 %, floored) of the paid time from
    4 Feb 12:00 + `later` to 14 Feb 12:00, of the 28-day month's 132 cents: same second,
    10 days, 132 × 10 / 28 = 47.14 → 47 and 47 + 10 (10.81 → 10); an hour later, 239 of
    672 hours, 132 × 239 / 672 = 46.95 → 46 and 46 + 10 (10.58 → 10)."""
    return {timedelta(0): (47, 57), timedelta(hours=1): (46, 56)}[later]


async def _expires(shop: Shop, vm: Vm) -> datetime:
    expires = (await shop.subscription(vm)).expires
    assert expires is not None
    return expires


async def _set_back(shop: Shop, vm: Vm, later: timedelta) -> None:
    """An admin (BOB, not the owner) sets `expires` back to END; `later` passes."""
    sub = await shop.subscription(vm)
    await update_subscription(
        shop.factory,
        sub.id,
        SubscriptionPatch(expires=END),
        clock=shop.clock,
        rails=None,
        admin_id=BOB,
    )
    assert await _expires(shop, vm) == END
    shop.clock.advance(later)


def _refund_notices(shop: Shop) -> list[str]:
    return [
        job.message
        for job in shop.queue.sent
        if isinstance(job, SendAdminNotification) and "Refund requested" in (job.title or "")
    ]


async def _state(shop: Shop, vm: Vm) -> tuple[object, ...]:
    """What a refund changes: the subscription, the balance and its ledger entries, the
    refund records, the credit notes and the notices queued."""
    async with shop.factory() as uow:
        ledger = (await uow.credit_ledger.list_page(ALICE, 100, 0)).items
    notes = [await shop.credit_notes(invoice) for invoice in await shop.invoices(vm)]
    return (
        await shop.subscription(vm),
        await shop.balances(),
        ledger,
        await records(shop, vm),
        notes,
        list(shop.queue.sent),
    )


# -- (a) the whole unused time refunded, the expiry set back: that time is free --------------


@RECORDING_PATHS
@LATER
@pytest.mark.parametrize(
    "second", [credited, by_hand_value, figure], ids=["to-credit", "by-hand", "get-figure"]
)
async def test_time_a_refund_took_back_and_an_admin_gave_back_is_not_refunded_again(
    shop: Shop, first: RefundPath, later: timedelta, second: RefundPath
) -> None:
    """Refunded from now (113, the expiry cut to now), `expires` set back to 28 Feb, then
    refunded again: the figure is 0 and a refund is refused (422, not a 409 replay): no
    ledger entry, no cut, no record, no credit note, no notice. Paying the month back twice
    is wrong; the admin gave that time."""
    vm = await paid_vm(shop)
    assert await first(shop, vm) == UNUSED
    assert await _expires(shop, vm) == shop.clock.now()
    await _set_back(shop, vm, later)
    before = await _state(shop, vm)

    if second is figure:
        assert await figure(shop, vm) == 0
    else:
        with pytest.raises(NothingToRefund, match=NO_PAID_TIME) as refused:
            await second(shop, vm)
        assert not isinstance(refused.value, AlreadyRefunded)

    assert await _state(shop, vm) == before
    assert await _expires(shop, vm) == END


# -- (b) a refund from a later date, the expiry set back: the time before it is still paid ----


async def _partly_refunded_and_set_back(shop: Shop, later: timedelta) -> Vm:
    """ALICE's month, 4 days used, refunded by hand from 14 Feb (66 before tax, 81 paid; the
    expiry cut to 14 Feb), then `expires` set back to 28 Feb; `later` passes."""
    vm = await paid_vm(shop)
    await by_hand(shop, vm, LATER_START)
    [record] = await records(shop, vm)
    assert record["value"] == f"{FIRST_VALUE} EUR (smallest units)"
    assert record["amount"] == f"{FIRST_GROSS} EUR (smallest units)"
    assert await _expires(shop, vm) == LATER_START
    await _set_back(shop, vm, later)
    return vm


@LATER
async def test_the_figure_after_the_expiry_was_set_back_is_the_time_never_refunded(
    shop: Shop, later: timedelta
) -> None:
    """Now → 14 Feb, no more: 14 Feb → 28 Feb was refunded, its restored days are free."""
    vm = await _partly_refunded_and_set_back(shop, later)
    before = await _state(shop, vm)

    assert await figure(shop, vm) == _left_value(later)[0]
    assert await _state(shop, vm) == before


@LATER
async def test_a_refund_to_credit_after_the_expiry_was_set_back_books_the_time_never_refunded(
    shop: Shop, later: timedelta
) -> None:
    """Booked (not answered as a replay), exactly now → 14 Feb, and the expiry cut to now;
    the two refunds add up to one refund of the month's unused 24 days (66 + 47 = 113)."""
    vm = await _partly_refunded_and_set_back(shop, later)
    value, _ = _left_value(later)

    booked = await to_credit(shop, vm)

    assert not booked.replayed and booked.entry.amount == value
    assert await shop.balances() == {"EUR": value}
    assert await _expires(shop, vm) == shop.clock.now()
    newer, older = await records(shop, vm)
    assert (newer["kind"], older["kind"]) == ("credit", "manual")
    assert newer["reference"] == booked.entry.reference != older["reference"]
    assert newer["amount"] == f"{value} EUR (smallest units)"
    if not later:
        assert FIRST_VALUE + value == UNUSED


@LATER
async def test_a_refund_by_hand_after_the_expiry_was_set_back_pays_the_time_never_refunded(
    shop: Shop, later: timedelta
) -> None:
    """Its own reference (the admins already paid the first one's), in its record, notice and
    credit note; exactly now → 14 Feb and its VAT: the invoice's notes take back 81 and 57,
    138 in all, one refund's 113 + 25 of the month's 24 unused days."""
    vm = await _partly_refunded_and_set_back(shop, later)
    [invoice] = await shop.invoices(vm)
    shop.queue.sent.clear()
    value, gross = _left_value(later)

    await by_hand(shop, vm)

    newer, older = await records(shop, vm)
    assert newer["kind"] == "manual" and newer["reference"] != older["reference"]
    assert newer["value"] == f"{value} EUR (smallest units)"
    assert newer["amount"] == f"{gross} EUR (smallest units)"
    first_note, second_note = await shop.credit_notes(invoice)
    assert (first_note.amount, second_note.amount) == (FIRST_GROSS, gross)
    assert (first_note.net, second_note.net) == (FIRST_VALUE, value)
    assert (first_note.tax, second_note.tax) == (FIRST_GROSS - FIRST_VALUE, gross - value)
    assert str(newer["reference"]) in second_note.reason
    [notice] = _refund_notices(shop)
    assert f"Refund reference: {newer['reference']} " in notice
    assert str(older["reference"]) not in notice
    assert await _expires(shop, vm) == shop.clock.now()
    if not later:
        assert (FIRST_GROSS + gross, FIRST_VALUE + value) == (GROSS, UNUSED)
        assert (FIRST_GROSS - FIRST_VALUE) + (gross - value) == VAT


@pytest.mark.parametrize("again", [to_credit, by_hand], ids=["to-credit", "by-hand"])
@pytest.mark.parametrize("second", [to_credit, by_hand], ids=["to-credit", "by-hand"])
async def test_repeats_of_the_refunds_after_the_expiry_was_set_back_pay_nothing_more(
    shop: Shop, second: Refunder, again: Refunder
) -> None:
    """A repeat of the first refund (by hand from 14 Feb, whose time the admin gave back)
    finds nothing paid (422); the second refund cut the time to now: a repeat of it, either
    way, finds its record (409), and so does one of the first. None changes anything."""
    vm = await _partly_refunded_and_set_back(shop, timedelta(hours=1))
    before = await _state(shop, vm)
    with pytest.raises(NothingToRefund, match=NO_PAID_TIME):
        await by_hand(shop, vm, LATER_START)
    assert await _state(shop, vm) == before

    await second(shop, vm)
    before = await _state(shop, vm)
    with pytest.raises(AlreadyRefunded):
        await again(shop, vm)
    with pytest.raises(AlreadyRefunded):
        await by_hand(shop, vm, LATER_START)

    assert await _state(shop, vm) == before
    assert len(await records(shop, vm)) == 2


@pytest.mark.parametrize(
    "refunds",
    [(to_credit, to_credit), (by_hand, by_hand), (to_credit, by_hand)],
    ids=["credit-credit", "hand-hand", "credit-hand"],
)
async def test_racing_refunds_after_the_expiry_was_set_back_pay_once(
    shop: Shop, refunds: tuple[Refunder, Refunder]
) -> None:
    """Two refunds from now at once: one is recorded (46 booked once, or told once), the
    other refused (a refund by hand repeated before its notice was recorded answers with
    that one notice, as `refunds.refunded_once` says)."""
    vm = await _partly_refunded_and_set_back(shop, timedelta(hours=1))
    value, gross = _left_value(timedelta(hours=1))
    shop.queue.sent.clear()

    results = await race(shop, *(_on(refund, vm) for refund in refunds))

    refused = [r for r in results if isinstance(r, BaseException)]
    answers = [r for r in results if not isinstance(r, BaseException)]
    assert all(isinstance(r, AlreadyRefunded) for r in refused), results
    newer, older = await records(shop, vm)
    assert older["kind"] == "manual" and newer["reference"] != older["reference"]
    if newer["kind"] == "credit":
        [booked] = answers
        assert isinstance(booked, Booked) and booked.entry.amount == value
        assert await shop.balances() == {"EUR": value}
        assert _refund_notices(shop) == []
    else:
        assert newer["amount"] == f"{gross} EUR (smallest units)"
        assert await shop.balance() == 0
        [notice] = _refund_notices(shop)
        assert str(newer["reference"]) in notice
        assert len(set(answers)) == 1
    assert await _expires(shop, vm) == shop.clock.now()


Refunder = Callable[[Shop, Vm], Awaitable[object]]


def _on(refund: Refunder, vm: Vm) -> Callable[[Shop], Awaitable[object]]:
    async def run(shop: Shop) -> object:
        return await refund(shop, vm)

    return run
