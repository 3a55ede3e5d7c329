"""Pay-what-you-want renewal through an LNURL-pay callback (LUD-06; pricing.md §7)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from app.billing.catalogue import charging_for, owned_vm, subscription_of, vm_price
from app.billing.errors import AmountOutOfRange
from app.billing.persist import store_payment
from app.billing.price_in_force import price_in_force, quote_metadata
from app.billing.rails import PaymentRails, PricedPayment
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.model import SubscriptionPayment
from domain.money import MSAT_PER_SAT, Currency, Money
from domain.pricing import cost_by_amount
from domain.subscription import INTERVALS_KEY
from domain.tax import TaxRates
from ports.clock import Clock
from ports.rates import RateStore
from ports.storage import UnitOfWorkFactory

#: LNURL-pay amounts accepted by the callback (R7.5; the upper bound is the advertised
#: maxSendable, which LUD-06 says the service checks).
LNURL_MIN_MSAT = 1_000
LNURL_MAX_MSAT = 1_000_000_000


def tax_exclusive(gross: int, rate_percent: Decimal) -> int:
    """The net part of a tax-inclusive amount: floor(gross × 100 / (100 + rate))."""
    exact = Fraction(gross * 100) / (100 + Fraction(rate_percent))
    return exact.numerator // exact.denominator


async def renew_by_amount(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    rates: RateStore,
    tax_rates: TaxRates,
    *,
    vm_id: int,
    amount_msat: int,
) -> SubscriptionPayment:
    """A Lightning Renewal payment buying whatever time `amount_msat` pays for (LNURL-pay).

    Takes the VM id (the reference passed the subscription id as one, §16.14). Amounts below
    1000 msat, above the advertised maxSendable or not whole sats are refused.

    LUD-06 wallets check that the invoice is for exactly the amount they asked for, so the
    amount is tax-inclusive (the reference added tax on top, breaking payment for taxed
    users): net = floor(amount × 100 / (100 + rate)), tax = amount − net. The time bought
    is floor(seconds of one interval × net / price) (§7). The payment is never reused: its
    `metadata` carries `{"intervals": null}` so D10 never mistakes it for an N-interval one.
    Anyone may pay for a VM, so there is no owner check; a deleted VM is "not found".
    """
    if not LNURL_MIN_MSAT <= amount_msat <= LNURL_MAX_MSAT:
        raise AmountOutOfRange(f"Amount must be between {LNURL_MIN_MSAT} and {LNURL_MAX_MSAT} msat")
    if amount_msat % MSAT_PER_SAT:
        raise AmountOutOfRange("Amount must be a whole number of satoshis")
    now = clock.now()
    async with uow_factory() as uow:
        vm = await owned_vm(uow, vm_id, None)
        sub = await subscription_of(uow, vm)
        price = await vm_price(uow, vm)
        table = await rates.table()
        charging = await charging_for(
            uow,
            method=PaymentMethod.LIGHTNING,
            rates=table,
            tax_rates=tax_rates,
            user_id=sub.user_id,
            company_id=sub.company_id,
        )
        net = tax_exclusive(amount_msat, tax_rates.rate_for(charging.country))
        quote = cost_by_amount(
            Money(Currency.BTC, net),
            price.list_price,
            price.interval,
            sub.expires,
            now,
            charging,
        )
        items = await uow.line_items.list_by_subscription(sub.id)
        basis = await price_in_force(uow, sub, items, purchase=False)  # completion values it (D23)
    priced = PricedPayment(
        subscription_id=sub.id,
        user_id=sub.user_id,
        method=PaymentMethod.LIGHTNING,
        payment_type=SubscriptionPaymentType.RENEWAL,
        amount=quote.amount,
        currency=quote.currency,
        rate=quote.rate,
        tax=amount_msat - net,
        processing_fee=quote.processing_fee,
        time_value=quote.time_value,
        metadata=quote_metadata(
            basis, table, now, **{INTERVALS_KEY: None, "amount_msat": amount_msat}
        ),
        memo=f"VM renewal {vm.id} to {quote.new_expiry:%Y-%m-%d %H:%M:%S}",
    )
    payment = await rails.create(priced, now)
    return await store_payment(uow_factory, rails, payment, now, reuse=None, idem=None)
