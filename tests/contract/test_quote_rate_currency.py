"""Account credit is valued only at the BTC rate of its own currency as the quote stored it,
never at the payment's `rate` column, on memory, SQLite and MariaDB. The column is the rate of
the payment's list currency (1 for a BTC price) and the row does not say which: read as the
rate of the credit's currency it converted a BTC-priced quote's EUR credit at 1 EUR per BTC
(EUR 0.01 paid 50 000 sat) and valued a GBP-priced payment's money in EUR at the GBP rate."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from app.billing.credit_balance import adjust_credit
from app.billing.credit_overpayment import credit_excess, credit_unrestorable
from app.billing.credit_settle import completion_settle
from domain.account_credit import credit_applied
from domain.credit import payment_meta
from domain.exchange import RateTable
from domain.model import SubscriptionPayment, Vm
from domain.price_basis import CREDIT_KEY, RATES_KEY
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.fakes import FreshRates
from tests.unit.billing.world import ALICE, Shop

database = storage_backends.database
shop = lifecycle_world.shop
#: 50 000 sat, the BTC price the operator moves the plan to
BTC_PRICE_MSAT = 50_000_000
#: 0.1 BTC: worth EUR 10 000 at the shop's EUR rate (100 000 per BTC), 10 cents at 1 per BTC
BIG_MSAT = 10_000_000_000


class NoFreshRates(FreshRates):
    """A rate store with no fresh rate (the feed down): a quote that needs none is made."""

    async def table(self) -> RateTable:
        return RateTable.of([])


async def _paid_vm_on_a_btc_plan(shop: Shop, msat: int) -> Vm:
    """A paid VM of an EUR subscription whose plan the operator then moved to BTC (`msat`)."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    async with shop.factory() as uow:
        plan = await uow.cost_plans.get(1)
        assert plan is not None and plan.currency == "EUR"
        await uow.cost_plans.update(attrs.evolve(plan, currency="BTC", amount=msat))
        await uow.commit()
    return vm


async def _give_eur(shop: Shop, amount: int) -> None:
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=ALICE,
        user_id=ALICE,
        currency="EUR",
        amount=amount,
        note="gift",
    )


async def _eur_balance(shop: Shop) -> int:
    async with shop.factory() as uow:
        return (await uow.credit_ledger.balances(ALICE)).get("EUR", 0)


async def test_eur_credit_is_not_applied_to_a_btc_quote_that_saw_no_eur_rate(shop: Shop) -> None:
    """The quote needed no rate (BTC price by Lightning) and stored none (`rates: {}`): the
    EUR balance cannot be valued, so it pays nothing and the price is charged whole (it
    was valued at the `rate` column, 1: EUR 0.01 paid the 50 000 sat)."""
    vm = await _paid_vm_on_a_btc_plan(shop, BTC_PRICE_MSAT)
    await _give_eur(shop, 100)
    blind = attrs.evolve(shop, rates=NoFreshRates(shop.clock))
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)

    quote = await blind.renew(vm, settle=settle)

    assert payment_meta(quote)[RATES_KEY] == {} and quote.rate == Decimal(1)
    assert credit_applied(payment_meta(quote)) is None
    assert not quote.is_paid and (quote.currency, quote.amount) == ("BTC", BTC_PRICE_MSAT)
    assert await _eur_balance(shop) == 100


async def test_eur_credit_pays_a_btc_quote_at_the_eur_rate_it_stored(shop: Shop) -> None:
    """With the EUR rate stored by the quote (100 000 per BTC), EUR 1.00 pays 100 000 sat of
    it, the rest is invoiced."""
    vm = await _paid_vm_on_a_btc_plan(shop, BTC_PRICE_MSAT)
    await _give_eur(shop, 100)
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)

    quote = await shop.renew(vm, settle=settle)

    assert credit_applied(payment_meta(quote)) == (100, "EUR")
    assert not quote.is_paid and quote.amount == BTC_PRICE_MSAT - 1_000_000
    assert await _eur_balance(shop) == 0


def _paid(payment: SubscriptionPayment, shop: Shop, **changes: Any) -> SubscriptionPayment:
    return attrs.evolve(payment, is_paid=True, paid_at=shop.clock.now(), **changes)


async def _credited(shop: Shop, paid: SubscriptionPayment, excess_msat: int) -> tuple[int, int]:
    """What `credit_unrestorable` books for `paid` in EUR, and `credit_excess` for an excess."""
    async with shop.factory() as uow:
        booked = (await credit_unrestorable(uow, paid, "EUR", "host removed")).booked
        excess = (await credit_excess(uow, paid, "EUR", excess_msat)).credited
        await uow.commit()
    return booked, excess


async def test_a_btc_payment_whose_quote_saw_no_rate_is_not_valued_at_1_eur_per_btc(
    shop: Shop,
) -> None:
    """0.1 BTC paid for a BTC price (quote with `rates: {}`, column 1) and 0.1 BTC overpaid:
    neither can be valued in EUR without the quote's EUR rate; nothing is booked (the
    callers tell the admins). At the column they were credited 10 cents' worth each."""
    vm = await _paid_vm_on_a_btc_plan(shop, BIG_MSAT)
    quote = await attrs.evolve(shop, rates=NoFreshRates(shop.clock)).renew(vm)
    assert payment_meta(quote)[RATES_KEY] == {} and quote.rate == Decimal(1)

    assert await _credited(shop, _paid(quote, shop), BIG_MSAT) == (0, 0)
    assert await _eur_balance(shop) == 0


async def test_a_gbp_priced_payment_without_stored_rates_is_not_credited_at_the_gbp_rate(
    shop: Shop,
) -> None:
    """A row from before quotes stored their rates: a Lightning renewal of an EUR
    subscription whose plan is priced in GBP, its column the GBP rate (70 000 per BTC). Its
    value and an excess credited in EUR at that rate were worth 30 % less than arrived;
    the row does not say whose rate its column is, so nothing is booked."""
    gbp = lifecycle_world.with_gbp(shop, Decimal(70_000))
    vm = await gbp.order()
    await gbp.complete(await gbp.renew(vm))
    await lifecycle_world.plan_moved_to_gbp(gbp)
    quote = await gbp.renew(vm)
    assert quote.currency == "BTC" and quote.rate == Decimal(70_000)
    old = {k: v for k, v in payment_meta(quote).items() if k != RATES_KEY}

    assert await _credited(gbp, _paid(quote, gbp, metadata=old), 1_000_000) == (0, 0)
    assert await _eur_balance(gbp) == 0


async def test_the_same_payment_with_its_rates_is_credited_at_the_eur_rate(shop: Shop) -> None:
    """The control: with its stored rates the same payment is valued at EUR's own rate."""
    gbp = lifecycle_world.with_gbp(shop, Decimal(70_000))
    vm = await gbp.order()
    await gbp.complete(await gbp.renew(vm))
    await lifecycle_world.plan_moved_to_gbp(gbp)
    quote = await gbp.renew(vm)

    booked, excess = await _credited(gbp, _paid(quote, gbp), 1_000_000)

    # 1 000 000 msat is EUR 1.00 at 100 000 per BTC: credited net of its 23 % VAT, floored
    assert excess == 81
    assert booked > 0
    assert await _eur_balance(gbp) == booked + excess


async def test_a_renewal_without_stored_rates_repriced_in_gbp_is_not_valued_at_its_eur_rate(
    shop: Shop,
) -> None:
    """A Lightning renewal quoted at EUR 1.32 (1 320 000 msat, its column BTC/EUR 100 000)
    that stored its price but not its rates, paid after the plan moved to GBP 1.32 (BTC/GBP
    70 000): its column was read as the GBP rate, buying the whole month where it is worth
    GBP 0.92, 0.7 of it (the operator underpaid). Its stored price says the column is
    EUR's: it is not valued (no time, UNVALUED for the operator), never at another
    currency's rate."""
    gbp = lifecycle_world.with_gbp(shop, Decimal(70_000))
    vm = await gbp.order()
    await gbp.complete(await gbp.renew(vm))
    sub = await gbp.subscription(vm)
    quote = await gbp.renew(vm)
    assert (quote.currency, quote.amount, quote.rate) == ("BTC", 1_320_000, Decimal(100_000))
    async with gbp.factory() as uow:
        old = {k: v for k, v in payment_meta(quote).items() if k != RATES_KEY}
        await uow.payments.update(attrs.evolve(quote, metadata=old))
        await uow.commit()
    await lifecycle_world.plan_moved_to_gbp(gbp)

    report = await gbp.complete(quote)

    assert report.completed
    paid = await gbp.payment(quote.id)
    assert payment_meta(paid)[CREDIT_KEY]["mode"] == "unvalued"
    assert (await gbp.subscription(vm)).expires == sub.expires
