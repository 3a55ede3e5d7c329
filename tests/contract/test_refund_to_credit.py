"""An admin refund to credit is booked in the subscription's currency, on memory, SQLite and
MariaDB: a plan re-priced in another currency is converted at today's BTC rates (floored,
said in the note) so a renewal can spend it, never above what was paid; without a rate
nothing changes; once under a race."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.admin.credit_refund import refund_to_credit
from app.admin.refund_record import NothingToRefund
from app.billing.credit_balance import Booked
from app.billing.credit_settle import completion_settle
from domain.account_credit import CreditReason
from domain.errors import NoExchangeRate
from domain.exchange import RateTable, fiat_to_msat
from domain.intervals import MONTHLY
from domain.model import Vm
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import ALICE, PLAN_EUR_CENTS, Shop

database = storage_backends.database
shop = lifecycle_world.shop
#: GBP cheaper than EUR (1 GBP buys EUR 0.80): the plan's GBP 1.32 is worth less than the
#: EUR 1.32 paid, so the refund is today's price, converted
GBP_PER_BTC = Decimal(125_000)
#: GBP dearer than EUR: GBP 1.32 is worth EUR 1.65, more than was paid
DEAR_GBP_PER_BTC = Decimal(80_000)
EUR_PER_BTC = Decimal(100_000)
#: 4 days after the purchase on 31 Jan: 24 of the 28 days of the month bought (→ 28 Feb) left
DAYS_USED = 4
#: the unused time at the plan's GBP 1.32: 132 × 24 / 28 = 113.14 → 113 pence
UNUSED_GBP = 113
#: 113 pence at 125 000 GBP and 100 000 EUR per BTC: 90.4 → 90 cents (rounded down)
UNUSED_EUR = 90
#: the unused time at the EUR plan's 1.32 itself: the same 113 cents
UNUSED_SAME = 113


def _with_gbp(shop: Shop, per_btc: Decimal = GBP_PER_BTC) -> Shop:
    return lifecycle_world.with_gbp(shop, per_btc)


async def _paid_vm(shop: Shop, *, gbp_plan: bool = False) -> Vm:
    """A VM paid for a month in EUR; then, with `gbp_plan`, the operator moves its plan to
    GBP (same figure, 1.32): the subscription stays in EUR. `DAYS_USED` days pass."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    if gbp_plan:
        await lifecycle_world.plan_moved_to_gbp(shop)
    shop.clock.advance(timedelta(days=DAYS_USED))
    return vm


async def _refund(shop: Shop, vm: Vm, rates: Any = None) -> Booked:
    return await refund_to_credit(
        shop.factory,
        shop.clock,
        rates or shop.rates,
        vm_id=vm.id,
        admin_id=ALICE,
        reason="host retired",
    )


async def _ledger(shop: Shop) -> list[tuple[CreditReason, str, int]]:
    async with shop.factory() as uow:
        page = await uow.credit_ledger.list_page(ALICE, 100, 0)
    return [(e.reason, e.currency, e.amount) for e in reversed(page.items)]


async def test_a_refund_after_a_repricing_is_booked_in_the_subscriptions_currency(
    shop: Shop,
) -> None:
    """The plan now lists GBP, the subscription is in EUR: the refund is EUR, converted at
    today's rates and floored, and the note says from what at which rates. Booked in GBP it
    would sit where no renewal of this subscription spends it."""
    shop = _with_gbp(shop)
    vm = await _paid_vm(shop, gbp_plan=True)

    booked = await _refund(shop, vm)

    entry = booked.entry
    assert (entry.currency, entry.amount, booked.balance) == ("EUR", UNUSED_EUR, UNUSED_EUR)
    assert entry.note == (
        "host retired; GBP 1.13 as EUR 0.90 at BTC/EUR 100000, BTC/GBP 125000 (exact, rounded down)"
    )
    assert (await shop.subscription(vm)).expires == shop.clock.now()
    async with shop.factory() as uow:
        assert await uow.credit_ledger.balances(ALICE) == {"EUR": UNUSED_EUR}


async def test_a_refund_after_a_repricing_upwards_pays_back_what_was_paid(shop: Shop) -> None:
    """The plan's GBP 1.32 is worth EUR 1.65 today, but the month was paid EUR 1.32: its 24
    days left are worth 141 cents at today's price and were paid 113; 113 are booked, and the
    note says from what it was limited."""
    shop = _with_gbp(shop, DEAR_GBP_PER_BTC)
    vm = await _paid_vm(shop, gbp_plan=True)

    booked = await _refund(shop, vm)

    assert (booked.entry.currency, booked.entry.amount) == ("EUR", UNUSED_SAME)
    assert booked.entry.note == (
        "host retired; GBP 1.13 as EUR 1.41 at BTC/EUR 100000, BTC/GBP 80000 (exact, rounded "
        "down); limited to EUR 1.13, what was paid for it"
    )


async def test_the_refunded_credit_pays_the_next_renewal(shop: Shop) -> None:
    """What the customer expects of a refund to credit: the next renewal of the (re-priced)
    subscription spends it, at the EUR rate its quote stored."""
    shop = _with_gbp(shop)
    vm = await _paid_vm(shop, gbp_plan=True)
    await _refund(shop, vm)
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)

    payment = await shop.renew(vm, settle=settle)

    assert payment.metadata["credit_applied"] == {
        "amount": UNUSED_EUR,
        "currency": "EUR",
        "charged": fiat_to_msat(UNUSED_EUR, EUR_PER_BTC),
    }
    assert payment.amount == fiat_to_msat(PLAN_EUR_CENTS, GBP_PER_BTC) - fiat_to_msat(
        UNUSED_EUR, EUR_PER_BTC
    )
    async with shop.factory() as uow:
        assert await uow.credit_ledger.balances(ALICE) == {"EUR": 0}


async def test_without_a_rate_the_refund_is_refused_and_changes_nothing(shop: Shop) -> None:
    """No GBP rate (the fake knows EUR and USD only): the value in EUR cannot be known."""
    vm = await _paid_vm(shop, gbp_plan=True)
    before = await shop.subscription(vm)

    with pytest.raises(NoExchangeRate, match="GBP"):
        await _refund(shop, vm)

    assert await shop.subscription(vm) == before
    assert await _ledger(shop) == []


class _NoRates:
    """A rate store that is down: reading it is a test failure."""

    async def table(self) -> RateTable:
        raise AssertionError("a refund in the subscription's own currency reads no rate")


async def test_a_refund_in_the_subscriptions_own_currency_reads_no_rate(shop: Shop) -> None:
    vm = await _paid_vm(shop)

    booked = await _refund(shop, vm, rates=_NoRates())

    assert (booked.entry.currency, booked.entry.amount) == ("EUR", UNUSED_SAME)
    assert booked.entry.note == "host retired"


async def test_racing_refunds_of_a_repriced_plan_book_once(shop: Shop) -> None:
    shop = _with_gbp(shop)
    vm = await _paid_vm(shop, gbp_plan=True)

    results = await asyncio.gather(_refund(shop, vm), _refund(shop, vm), return_exceptions=True)

    booked = [r for r in results if isinstance(r, Booked) and not r.replayed]
    assert len(booked) == 1, results
    for r in results:
        assert isinstance(r, Booked | NothingToRefund), r
    assert await _ledger(shop) == [(CreditReason.REFUND_TO_CREDIT, "EUR", UNUSED_EUR)]
    assert (await shop.subscription(vm)).expires == shop.clock.now()


@pytest.mark.parametrize(
    ("bought", "last_month_days"),
    [
        (datetime(2026, 3, 15, 12, tzinfo=UTC), 28),  # ends 15 Mar 2027
        (datetime(2026, 2, 15, 12, tzinfo=UTC), 31),  # ends 15 Feb 2027
    ],
)
async def test_a_twelve_month_renewal_refunded_is_never_more_than_it_cost(
    shop: Shop, bought: datetime, last_month_days: int
) -> None:
    """12 × 1.32 EUR paid at once: refunded at once it is 15.84 EUR, one second later a cent
    less. Spread over the last month alone it was 17.20 (28 days) or 15.54 (31 days)."""
    shop.clock.set(bought)
    vm = await shop.order()
    await shop.complete(await shop.renew(vm, intervals=12))
    sub = await shop.subscription(vm)
    assert sub.expires is not None
    assert MONTHLY.seconds_of_period_ending(sub.expires) == last_month_days * 86_400
    async with shop.factory() as uow:
        paid = (await uow.payments.paid_tally(sub.id)).paid
    # paid by Lightning: 15.84 EUR at 100 000 EUR/BTC
    assert [(p.currency, p.amount) for p in paid] == [("BTC", 12 * PLAN_EUR_CENTS * 10_000)]

    booked = await _refund(shop, vm)
    assert booked.entry.amount == 12 * PLAN_EUR_CENTS

    again = await shop.order()
    await shop.complete(await shop.renew(again, intervals=12))
    shop.clock.advance(timedelta(seconds=1))
    booked = await _refund(shop, again)
    assert booked.entry.amount == 12 * PLAN_EUR_CENTS - 1
