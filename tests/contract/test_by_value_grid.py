"""Time bought by value is measured on the subscription's fixed grid of months (review r18),
on memory, SQLite and MariaDB: a month's price paid in two LNURL payments buys what it buys
at once, each memo's date is the expiry its completion books, a refund values such time as
it was bought (its unused part too, on the grid), and a paid renewal whose end would fall past
year 9999 is booked as credit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs

from app.admin.vms import extend_vm
from app.billing.lnurl import renew_by_amount
from domain.enums import IntervalType
from domain.model import SubscriptionPayment, Vm
from ports.jobs import SendAdminNotification, SendNotification
from tests.contract import lifecycle_world, storage_backends
from tests.contract.refunds import REFUND_PATHS, RefundPath, figure
from tests.unit.billing.world import ALICE, BOB, Shop

database = storage_backends.database
shop = lifecycle_world.shop

FEB_28 = datetime(2026, 2, 28, 12, tzinfo=UTC)  # a paid VM's expiry in the shop
#: the shop's plan: EUR 1.32 a month at 100 000 EUR per BTC; BOB is not taxed, so an LNURL
#: amount of his is all net
MONTH_MSAT = 1_320_000


async def _paid_vm(shop: Shop) -> Vm:
    """BOB's VM, ordered 31 Jan 12:00 (its grid: 28 Feb, 31 Mar, 30 Apr, …) and paid one
    month: it expires 28 Feb 12:00."""
    vm = await shop.order(user_id=BOB)
    await shop.complete(await shop.renew(vm))
    assert (await shop.subscription(vm)).expires == FEB_28
    return vm


async def _pay_by_amount(shop: Shop, vm: Vm, msat: int) -> datetime:
    """An LNURL payment of `msat`, completed; the expiry it booked, checked against its memo."""
    payment: SubscriptionPayment = await renew_by_amount(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        vm_id=vm.id,
        amount_msat=msat,
    )
    assert (await shop.complete(payment)).completed
    booked = (await shop.subscription(vm)).expires
    assert booked is not None
    assert shop.node.memos[payment.id] == f"VM renewal {vm.id} to {booked:%Y-%m-%d %H:%M:%S}"
    return booked


async def test_a_months_price_paid_in_two_lnurl_payments_buys_what_it_buys_at_once(
    shop: Shop,
) -> None:
    """From 28 Feb, a tenth then nine tenths of the price bought 31 Mar 04:48 (each measured
    over the month starting at the expiry it found: 28 days, then 31), 2.7 days more than
    the month paid at once (28 Mar). On the grid both are the cell 28 Feb → 31 Mar."""
    one, two = await _paid_vm(shop), await _paid_vm(shop)
    at_once = await _pay_by_amount(shop, one, MONTH_MSAT)
    await _pay_by_amount(shop, two, MONTH_MSAT // 10)
    split = await _pay_by_amount(shop, two, MONTH_MSAT - MONTH_MSAT // 10)
    assert split == at_once == datetime(2026, 3, 31, 12, tzinfo=UTC)


async def test_time_bought_by_value_off_the_grid_is_refunded_as_it_was_bought(
    shop: Shop,
) -> None:
    """A VM ordered 28 Jan (grid: 28 Feb, 28 Mar, 28 Apr), paid to 28 Feb and given a day
    free: a month's price by LNURL on 1 Mar buys 27/28 of 28 Feb → 28 Mar and 1/28 of 28 Mar
    → 28 Apr. Refunded at once it is worth a month (floored seconds aside): 131 cents.
    Counted forward from 1 Mar (a month to 1 Apr) it was 0.906 of one: 119."""
    shop.clock.set(datetime(2026, 1, 28, 12, tzinfo=UTC))
    vm = await shop.order(user_id=BOB)
    await shop.complete(await shop.renew(vm))
    await extend_vm(shop.factory, shop.clock, shop.queue, vm_id=vm.id, days=1, admin_id=ALICE)
    shop.clock.set(datetime(2026, 3, 1, 12, tzinfo=UTC))
    booked = await _pay_by_amount(shop, vm, MONTH_MSAT)
    assert booked == datetime(2026, 3, 28, 12, tzinfo=UTC) + timedelta(seconds=31 * 86_400 // 28)

    assert await figure(shop, vm) == 131


@REFUND_PATHS
async def test_time_bought_by_value_is_refunded_by_the_part_of_the_grid_left(
    shop: Shop, path: RefundPath
) -> None:
    """Review r23: a VM ordered 31 Dec (grid: 31 Jan, 28 Feb, 31 Mar), paid to 31 Jan: two
    months' price by LNURL buy 31 Jan → 31 Mar. Refunded on 28 Feb, one cell used, one
    month is left: 132 cents. By seconds it was 31/59 of two months: 138 (5 % more)."""
    shop.clock.set(datetime(2025, 12, 31, 12, tzinfo=UTC))
    vm = await shop.order(user_id=BOB)
    await shop.complete(await shop.renew(vm))
    shop.clock.set(datetime(2026, 1, 31, 12, tzinfo=UTC))
    assert await _pay_by_amount(shop, vm, 2 * MONTH_MSAT) == datetime(2026, 3, 31, 12, tzinfo=UTC)
    shop.clock.set(FEB_28)

    assert await path(shop, vm) == 132


async def _set_expiry(shop: Shop, vm: Vm, expires: datetime) -> None:
    sub = await shop.subscription(vm)
    async with shop.factory() as uow:
        await uow.subscriptions.update(attrs.evolve(sub, expires=expires))
        await uow.commit()


async def test_a_paid_renewal_past_the_calendar_is_booked_as_credit(shop: Shop) -> None:
    """A 10-year plan: a 120-interval renewal quoted when it ended in 9900 and paid once the
    expiry had moved to 9000 raised at completion (the money came, nothing was booked, each
    retry failed). It is booked: no time, its value as the owner's account credit, and the
    owner and the admins are told."""
    async with shop.factory() as uow:
        plan = await uow.cost_plans.get(1)
        assert plan is not None
        await uow.cost_plans.update(
            attrs.evolve(plan, interval_type=IntervalType.YEAR, interval_amount=10)
        )
        await uow.commit()
    vm = await shop.order(user_id=BOB)
    await shop.complete(await shop.renew(vm))
    await _set_expiry(shop, vm, datetime(8700, 1, 1, 12, tzinfo=UTC))
    quote = await shop.renew(vm, intervals=120)  # ends 9900: accepted
    later = datetime(9000, 1, 1, 12, tzinfo=UTC)  # other quotes were paid first
    await _set_expiry(shop, vm, later)
    shop.queue.sent.clear()

    assert (await shop.complete(quote)).completed
    assert (await shop.subscription(vm)).expires == later
    paid = await shop.payment(quote.id)
    assert paid.is_paid and paid.metadata["credit"]["past_calendar"] is True
    assert await shop.balances(BOB) == {"EUR": 120 * 132}
    owner = [j for j in shop.queue.sent if isinstance(j, SendNotification)]
    assert [j.user_id for j in owner] == [BOB]
    assert "past the end of the calendar" in owner[0].message
    assert "EUR 158.40, was added to your account credit" in owner[0].message
    (admins,) = [j for j in shop.queue.sent if isinstance(j, SendAdminNotification)]
    assert "past the end of the calendar" in (admins.title or "")
    assert not (await shop.complete(quote)).completed  # a replay books nothing more
    assert await shop.balances(BOB) == {"EUR": 120 * 132}
