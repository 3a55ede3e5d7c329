"""An LNURL payment buys at most 120 intervals (D6), on memory, SQLite and MariaDB: its
payRequest advertises what 120 intervals cost, its callback refuses more, a price cut
between invoice and settlement gives 120 intervals and the rest as the owner's account
credit (once), which a refund of its time never pays back again, and its memo's date is the
expiry its completion books."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from app.billing.credit_overpayment import CAPPED_SUFFIX, credit_uncounted
from app.billing.errors import AmountOutOfRange
from app.billing.lnurl import LNURL_MAX_MSAT, LNURL_MIN_MSAT, lnurl_offer, renew_by_amount
from domain.enums import IntervalType
from domain.intervals import MONTHLY, Interval
from domain.model import SubscriptionPayment, Vm
from ports.jobs import SendAdminNotification, SendNotification
from tests.contract import lifecycle_world, storage_backends
from tests.contract.refunds import REFUND_PATHS, RefundPath
from tests.unit.billing.world import ALICE, Shop

database = storage_backends.database
shop = lifecycle_world.shop

FEB_28 = datetime(2026, 2, 28, 12, tzinfo=UTC)  # a paid VM's expiry in the shop
#: the shop's plan: EUR 1.32 a month, EUR at 100 000 per BTC: 1 320 000 msat a month; ALICE
#: is taxed 23 % (IE), inside the LNURL amount
MONTH_MSAT = 1_320_000
#: the largest whole-sat amount whose net, floor(x × 100 / 123), buys 120 months
MONTHLY_MAX = 194_832_000


async def _by_amount(shop: Shop, vm: Vm, msat: int) -> SubscriptionPayment:
    return await renew_by_amount(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        vm_id=vm.id,
        amount_msat=msat,
    )


async def _max_sendable(shop: Shop, vm: Vm) -> int:
    offer = await lnurl_offer(shop.factory, shop.clock, shop.rates, shop.tax_rates, vm.id)
    assert offer.min_msat == LNURL_MIN_MSAT
    return offer.max_msat


async def _plan(shop: Shop, **changes: Any) -> None:
    async with shop.factory() as uow:
        plan = await uow.cost_plans.get(1)
        assert plan is not None
        await uow.cost_plans.update(attrs.evolve(plan, **changes))
        await uow.commit()


async def _paid_vm(shop: Shop) -> Vm:
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    assert (await shop.subscription(vm)).expires == FEB_28
    return vm


def test_the_monthly_maximum_is_the_largest_whole_sat_amount_buying_120_months() -> None:
    assert MONTHLY_MAX * 100 // 123 == 120 * MONTH_MSAT
    assert (MONTHLY_MAX + 1_000) * 100 // 123 > 120 * MONTH_MSAT


async def test_the_maximum_amount_on_a_cheap_daily_plan_is_refused_at_the_callback(
    shop: Shop,
) -> None:
    """r9: 0.01 BTC on a EUR 0.10 / day plan paid 8 130 days and booked 1 200, the rest lost."""
    await _plan(shop, amount=10, interval_type=IntervalType.DAY)  # EUR 0.10 a day
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    paid_before = len(await shop.payments(vm))
    most = await _max_sendable(shop, vm)
    assert most == 14_760_000 == 120 * 100_000 * 123 // 100  # 120 days, 23 % inside
    for msat in (LNURL_MAX_MSAT, most + 1_000):
        with pytest.raises(AmountOutOfRange) as err:
            await _by_amount(shop, vm, msat)
        assert f"between {LNURL_MIN_MSAT} and {most} msat" in err.value.message
    assert len(await shop.payments(vm)) == paid_before  # nothing stored, no invoice made
    before = (await shop.subscription(vm)).expires
    assert before is not None
    payment = await _by_amount(shop, vm, most)
    await shop.complete(payment)
    assert (await shop.subscription(vm)).expires == Interval(IntervalType.DAY).add_to(before, 120)
    assert await shop.balances() == {}
    assert not [j for j in shop.queue.sent if isinstance(j, SendAdminNotification)]


async def test_max_sendable_is_advertised_per_vm(shop: Shop) -> None:
    monthly = await _paid_vm(shop)
    assert await _max_sendable(shop, monthly) == MONTHLY_MAX
    await _by_amount(shop, monthly, MONTHLY_MAX)  # the maximum is taken
    with pytest.raises(AmountOutOfRange):
        await _by_amount(shop, monthly, MONTHLY_MAX + 1_000)
    await _plan(shop, amount=100_00)  # EUR 100 a month: 120 months is 12 000 000 000 msat
    assert await _max_sendable(shop, monthly) == LNURL_MAX_MSAT


async def test_a_price_cut_between_invoice_and_settlement_credits_the_rest_once(
    shop: Shop,
) -> None:
    vm = await _paid_vm(shop)
    payment = await _by_amount(shop, vm, MONTHLY_MAX)  # 120 months at EUR 1.32
    assert payment.amount == 120 * MONTH_MSAT
    await _plan(shop, amount=66)  # EUR 0.66: the payment is now worth 240 months
    shop.queue.sent.clear()
    report = await shop.complete(payment)
    assert report.completed
    # 120 months on the grid of months from the subscription's creation (31 Jan 2026): from
    # its first edge (28 Feb) to its 121st, 29 Feb 2036
    created = (await shop.subscription(vm)).created
    assert (await shop.subscription(vm)).expires == MONTHLY.add_to(created, 121)
    # the other 120 months at EUR 0.66, net of the VAT its invoice charged: EUR 79.20
    assert await shop.balances() == {"EUR": 120 * 66}
    paid = await shop.payment(payment.id)
    credit = paid.metadata["credit"]
    assert credit["capped_at_intervals"] == 120
    assert credit["uncounted"] == 120 * 660_000 and credit["rest_credited"] == "EUR 79.20"
    owner = [j for j in shop.queue.sent if isinstance(j, SendNotification)]
    assert [j.user_id for j in owner] == [ALICE]
    assert "EUR 79.20, was added to your account credit" in owner[0].message
    (admins,) = [j for j in shop.queue.sent if isinstance(j, SendAdminNotification)]
    assert "capped at 120 intervals" in admins.message
    assert "EUR 79.20, was booked as account credit of user 1" in admins.message
    assert "for you to settle" not in admins.message

    # a replayed settlement books nothing more, nor does the credit's own key book twice
    assert not (await shop.complete(payment)).completed
    async with shop.factory() as uow:
        again = await credit_uncounted(uow, paid, "EUR", 120 * 660_000, 120)
        await uow.commit()
    assert again.replayed and again.credited == 120 * 66
    assert await shop.balances() == {"EUR": 120 * 66}
    async with shop.factory() as uow:
        entries = (await uow.credit_ledger.list_page(ALICE, 100, 0)).items
    assert [e.reference for e in entries] == [payment.id.hex() + CAPPED_SUFFIX]


@REFUND_PATHS
async def test_a_refund_after_the_price_is_restored_never_pays_back_the_credited_rest(
    shop: Shop, path: RefundPath
) -> None:
    """Review r23: 120 months' price paid by LNURL, the price halved before it settled: 120
    months given and the other 120 months' worth (EUR 79.20) credited. The price restored,
    a refund at once values the unused 121 months at EUR 1.32, capped by what each payment
    paid for its time: the first month's 132 and, of the LNURL payment, only the half that
    bought time, 7 920. It counted the whole payment (15 840): EUR 158.40 refunded on top of
    the EUR 79.20 credited, against EUR 158.40 paid."""
    vm = await _paid_vm(shop)
    payment = await _by_amount(shop, vm, MONTHLY_MAX)
    await _plan(shop, amount=66)
    assert (await shop.complete(payment)).completed
    assert await shop.balances() == {"EUR": 120 * 66}
    await _plan(shop, amount=132)

    assert await path(shop, vm) == 132 + 120 * 66


@pytest.mark.parametrize("msat", [LNURL_MIN_MSAT, 123_000, 4_059_000, 50_000_000, MONTHLY_MAX])
async def test_the_memo_date_is_the_expiry_the_completion_books(shop: Shop, msat: int) -> None:
    """r9: the memo counted the next interval's length for every interval (up to ~10 % off)."""
    vm = await _paid_vm(shop)
    payment = await _by_amount(shop, vm, msat)
    memo = shop.node.memos[payment.id]
    await shop.complete(payment)
    booked = (await shop.subscription(vm)).expires
    assert booked is not None
    assert memo == f"VM renewal {vm.id} to {booked:%Y-%m-%d %H:%M:%S}"
    assert payment.time_value == (booked - FEB_28).total_seconds()
    assert (await shop.payment(payment.id)).time_value == payment.time_value
