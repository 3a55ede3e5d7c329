"""Every admin refund values the unused share of the periods actually paid for, on memory,
SQLite and MariaDB: a month bought on 31 Jan (ending 28 Feb) refunded at once pays the whole
price; a refund is keyed by the period it refunds, so a later renewal ending on the same
second is refunded on its own, not taken for a replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.admin.refund_record import NothingToRefund
from app.admin.vms import extend_vm
from domain.model import Vm
from ports.jobs import SendAdminNotification
from tests.contract import lifecycle_world, storage_backends
from tests.contract.refunds import (
    REFUND_PATHS,
    RefundPath,
    by_hand,
    by_hand_value,
    credited,
    figure,
    notified,
    records,
    to_credit,
)
from tests.unit.billing.world import ALICE, PLAN_EUR_CENTS, START, Shop

database = storage_backends.database
shop = lifecycle_world.shop


async def _bought(shop: Shop, *, at: datetime = START, renewals: int = 1) -> Vm:
    """ALICE's VM ordered and paid for `renewals` months, one invoice each, at `at`."""
    shop.clock.set(at)
    vm = await shop.order()
    for _ in range(renewals):
        await shop.complete(await shop.renew(vm))
    shop.queue.sent.clear()
    return vm


@REFUND_PATHS
async def test_a_month_bought_on_the_31st_refunded_at_once_pays_the_whole_price(
    shop: Shop, path: RefundPath
) -> None:
    """31 Jan 12:00 + 1 month = 28 Feb 12:00, all of it unused: 1.32 EUR, not 28/31 of it
    (1.19, a month stepped back from 28 Feb starting 28 Jan)."""
    vm = await _bought(shop)
    assert (await shop.subscription(vm)).expires == datetime(2026, 2, 28, 12, tzinfo=UTC)

    assert await path(shop, vm) == PLAN_EUR_CENTS
    if path is by_hand_value:  # the whole invoice is taken back: 1.32 and its 23 % VAT
        [record] = await records(shop, vm)
        assert record["amount"] == "162 EUR (smallest units)"


@REFUND_PATHS
async def test_mid_period_the_refund_is_exactly_the_unused_share(
    shop: Shop, path: RefundPath
) -> None:
    """4 days into 31 Jan → 28 Feb: 24 of its 28 days, 132 × 24 / 28 = 113.14 → 113 cents."""
    vm = await _bought(shop)
    shop.clock.advance(timedelta(days=4))

    assert await path(shop, vm) == 113


@REFUND_PATHS
async def test_months_stacked_from_a_month_end_refund_as_the_months_bought(
    shop: Shop, path: RefundPath
) -> None:
    """Three monthly invoices from 31 Jan (→ 28 Feb → 28 Mar → 28 Apr), refunded 10 days
    into the first: its 18 of 28 days and two whole months, 132 × (18/28 + 2) = 348.86."""
    vm = await _bought(shop, renewals=3)
    shop.clock.advance(timedelta(days=10))

    assert await path(shop, vm) == 348


async def test_a_refund_from_a_later_date_and_then_the_rest_add_up_to_one_refund(
    shop: Shop,
) -> None:
    """4 days in: refunded by hand from 14 Feb (14 of the 28 days: 66), then to credit from
    now (the 10 days before it: 47.14): 113 in all, one refund's figure. The month the
    money bought is 31 Jan → 28 Feb even after its end was cut to 14 Feb (valued as a month
    ending 14 Feb, the 10 days were 42)."""
    vm = await _bought(shop)
    shop.clock.advance(timedelta(days=4))
    assert await figure(shop, vm) == 113

    await by_hand(shop, vm, datetime(2026, 2, 14, 12, tzinfo=UTC))
    assert await figure(shop, vm) == 47
    booked = await to_credit(shop, vm)

    [credit, manual] = await records(shop, vm)
    assert (manual["value"], booked.entry.amount) == ("66 EUR (smallest units)", 47)
    assert credit["kind"] == "credit"


async def test_time_a_refund_took_back_is_not_valued_again_as_that_periods(shop: Shop) -> None:
    """A year bought on 31 Jan, refunded to credit 4 days in (cut to 4 Feb), a month renewed
    (→ 4 Mar), 10 days added free by an admin (→ 14 Mar): the renewal's month is whole and
    the 10 free days are worth nothing: 132. The year's period still covers 4 → 14 Mar, but
    that time was paid back (as the year's: 132 × (1 + 120/365) = 175.4)."""
    vm = await _bought(shop, renewals=0)
    await shop.complete(await shop.renew(vm, intervals=12))
    shop.clock.advance(timedelta(days=4))
    assert (await to_credit(shop, vm)).entry.amount == 12 * 132 * 361 // 365
    await shop.complete(await shop.renew(vm))
    await extend_vm(shop.factory, shop.clock, shop.queue, vm_id=vm.id, days=10, admin_id=ALICE)
    assert (await shop.subscription(vm)).expires == datetime(2026, 3, 14, 12, tzinfo=UTC)

    assert await figure(shop, vm) == 132


@REFUND_PATHS
async def test_days_an_admin_added_free_are_not_refunded(shop: Shop, path: RefundPath) -> None:
    """A month bought (31 Jan → 28 Feb), 365 days added free by an admin as goodwill, 4 days
    used: every path refunds the 24 unused days of the month the money bought, 113, and
    nothing for the free year (found by r1: to credit booked it at today's price)."""
    vm = await _bought(shop)
    await extend_vm(shop.factory, shop.clock, shop.queue, vm_id=vm.id, days=365, admin_id=ALICE)
    shop.queue.sent.clear()
    shop.clock.advance(timedelta(days=4))

    assert await path(shop, vm) == 113


@REFUND_PATHS
async def test_a_refund_of_free_days_alone_pays_nothing(shop: Shop, path: RefundPath) -> None:
    """Once the month the money bought is used, what is left was given: the figure is 0 and
    a refund, to credit or by hand, is refused (422) with nothing changed."""
    vm = await _bought(shop)
    await extend_vm(shop.factory, shop.clock, shop.queue, vm_id=vm.id, days=30, admin_id=ALICE)
    shop.queue.sent.clear()
    shop.clock.set(datetime(2026, 3, 1, 12, tzinfo=UTC))  # the month ended 28 Feb 12:00
    before = await shop.subscription(vm)

    if path is figure:
        assert await figure(shop, vm) == 0
        return
    with pytest.raises(NothingToRefund, match="only time a payment bought is refunded"):
        await path(shop, vm)
    assert await shop.subscription(vm) == before and await records(shop, vm) == []
    assert shop.queue.sent == []


async def _renewed_onto_the_same_second(
    shop: Shop, first: RefundPath, later: timedelta = timedelta(hours=1)
) -> tuple[Vm, datetime]:
    """Bought 30 Jan 12:00 (→ 28 Feb 12:00), refunded (`first`) a day later (cut to 31 Jan
    12:00), then renewed at once: 31 Jan + 1 month is 28 Feb 12:00 again; `later` passes."""
    vm = await _bought(shop, at=START - timedelta(days=1))
    expires = (await shop.subscription(vm)).expires
    shop.clock.set(START)
    assert await first(shop, vm) == 132 * 28 // 29  # 28 of the 29 days of 30 Jan → 28 Feb
    await shop.complete(await shop.renew(vm))
    assert (await shop.subscription(vm)).expires == expires
    shop.clock.advance(later)
    return vm, START + later


async def test_a_renewal_ending_on_a_refunded_second_is_refunded_to_credit_on_its_own(
    shop: Shop,
) -> None:
    """The renewal is another period: its refund is booked (not answered as a replay of the
    first, which booked nothing and left the time paid), and the time is cut."""
    vm, now = await _renewed_onto_the_same_second(shop, credited)

    second = await to_credit(shop, vm)

    assert not second.replayed
    assert second.entry.amount == 132 * (28 * 86_400 - 3_600) // (28 * 86_400)
    assert (await shop.subscription(vm)).expires == now
    assert await shop.balances() == {"EUR": 132 * 28 // 29 + second.entry.amount}
    newer, older = await records(shop, vm)
    assert newer["reference"] != older["reference"]
    assert second.entry.reference == newer["reference"]


def _refund_notices(shop: Shop) -> list[str]:
    return [
        job.message
        for job in shop.queue.sent
        if isinstance(job, SendAdminNotification) and "Refund requested" in (job.title or "")
    ]


@pytest.mark.parametrize("later", [timedelta(0), timedelta(hours=1)], ids=["same-second", "1h"])
async def test_a_renewal_ending_on_a_refunded_second_is_refunded_by_hand_with_its_own_notice(
    shop: Shop, later: timedelta
) -> None:
    """A refund by hand of the renewal's time has its own reference in its record, notice
    and notice mark, so the admins pay it: they pay each reference once, and it was the
    first refund's (even when made in the very second the first was, with the same cut)."""
    vm, _ = await _renewed_onto_the_same_second(shop, by_hand_value, later)
    [first_notice] = _refund_notices(shop)

    job_id = await by_hand(shop, vm)

    newer, older = await records(shop, vm)
    left = 28 * 86_400 - int(later.total_seconds())
    assert newer["value"] == f"{132 * left // (28 * 86_400)} EUR (smallest units)"
    assert newer["reference"] != older["reference"]
    again, second_notice = _refund_notices(shop)
    assert again == first_notice and str(newer["reference"]) in second_notice
    marks = await notified(shop, vm)
    assert [(m["reference"], m["job_id"]) for m in marks][:1] == [(newer["reference"], job_id)]
    assert [m["reference"] for m in marks] == [newer["reference"], older["reference"]]
