"""Price every line item of a subscription into one payment for N intervals (pricing.md §13)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from app.billing.catalogue import VmPrice, charging_for
from app.billing.price_in_force import (
    price_basis,
    quote_metadata,
    refuse_deleted_vm,
    vm_price_on,
)
from app.billing.rails import PricedPayment
from domain.enums import PaymentMethod, SubscriptionPaymentType, SubscriptionType
from domain.exchange import RateTable, charge_amount, charged_currency, convert
from domain.intervals import renewal_period
from domain.model import LineItem, Subscription
from domain.money import Money
from domain.pricing import RenewalQuote, levy_of, parse_list_currency, renewal_quote
from domain.subscription import renewal_metadata
from domain.tax import REVERSE_CHARGE_KEY, TAX_RATE_KEY, TaxRates
from ports.storage import PricedItems, UnitOfWork

#: the stored rate when nothing was converted (§13, R1.20).
NO_RATE = Decimal(0)

_MEMO = {
    SubscriptionPaymentType.PURCHASE: "Subscription purchase",
    SubscriptionPaymentType.RENEWAL: "Subscription renewal",
}


async def price_subscription(
    uow: UnitOfWork,
    sub: Subscription,
    items: list[LineItem],
    read: PricedItems,
    *,
    method: PaymentMethod,
    count: int,
    payment_type: SubscriptionPaymentType,
    rates: RateTable,
    tax_rates: TaxRates,
    now: datetime,
) -> PricedPayment:
    """One payment for `count` intervals of every line item (§13 R13.1–R13.2 with D6).

    VPS items are priced afresh from the plan or custom pricing for N calendar intervals
    (D6). Other items cost `amount × N` in the subscription currency, plus every item's setup
    fee on a Purchase, converted once. Every part is charged in the first VM's price
    currency (by card; BTC by Lightning, where every part is converted already): a VM whose
    plan was moved to another currency after its subscription was sold is charged in the
    plan's currency, as when it is billed alone; the other items (in the subscription's
    currency) and any VM priced in a third are converted into it at the quote's rates,
    half-up (D2), once per part. The rates are stored with the quote (`RATES_KEY`), so the
    conversion can be checked and redone exactly. Tax (D3) and the processing fee (D4, one
    base fee) are computed once, on the whole charged amount, as the credit-first split
    computes them (`levy_of`): taxing each part and adding floors each part's fraction
    away, and a fee per part charges the base fee once per part. Unlike the
    reference, a subscription without a VM paid by Lightning is charged in BTC (its quirk
    R13.2 refused it), and one renewed for N > 1 intervals stores the seconds of N calendar
    intervals: the reference charged N and, with time_value NULL, extended by one. That
    `time_value` is informational: completion counts N calendar intervals from the expiry
    it finds, against the price basis stored in `metadata` (D6, D23). `read`: what
    `priced_items` read of `sub` (one statement: user, company, VMs, plans). A VPS item
    whose VM is deleted (or gone) refuses the whole quote: `VmDeleted`.
    """
    refuse_deleted_vm(read)
    user = read.user
    charging = await charging_for(
        uow,
        method=method,
        rates=rates,
        tax_rates=tax_rates,
        user_id=sub.user_id,
        company_id=sub.company_id,
        user=user,
        seller=read.seller,
    )
    vm_quotes: list[RenewalQuote] = []
    vm_prices: dict[int, VmPrice] = {}
    other = 0
    for item in items:
        if item.subscription_type is SubscriptionType.VPS:
            price = vm_prices[item.id] = await vm_price_on(uow, read.vms.get(item.id))
            vm_quotes.append(
                renewal_quote(price.list_price, price.interval, sub.expires, now, count, charging)
            )
        else:
            other += item.amount * count
    if payment_type is SubscriptionPaymentType.PURCHASE:
        other += sum(item.setup_amount for item in items)

    list_currency = parse_list_currency(sub.currency)
    first = vm_quotes[0].currency if vm_quotes else charged_currency(list_currency, method)
    total = Money.zero(first)
    rate = vm_quotes[0].rate if vm_quotes else NO_RATE
    for quote in vm_quotes:
        total = total + convert(quote.money, first, rates, now)
    if other > 0:
        charged = charge_amount(Money(list_currency, other), method, rates, now)
        total = total + convert(charged.money, first, rates, now)
        rate = rate if vm_quotes else charged.rate
    levy = levy_of(charging, total.currency, now)
    tax, fee = levy(total.amount)

    if vm_quotes:
        time_value: int | None = vm_quotes[0].time_value
    elif count > 1:
        time_value = renewal_period(sub.interval, sub.expires, now, count).time_value
    else:
        time_value = None  # one subscription interval, counted when paid (R3.6)
    # what the quote was made against, so completion can tell a stale quote (D23); from the
    # prices and user read above (one read each, same transaction)
    purchase = payment_type is SubscriptionPaymentType.PURCHASE
    basis = price_basis(sub, items, vm_prices, user.country_code, purchase=purchase)
    # the rate is recorded so the invoice prints it even when credit paid part (or all) of it,
    # and the reverse charge with it so the invoice states it exactly when no tax was charged
    fields = {
        **renewal_metadata(count),
        TAX_RATE_KEY: str(charging.tax_rate),
        REVERSE_CHARGE_KEY: charging.reverse_charge,
    }
    return PricedPayment(
        subscription_id=sub.id,
        user_id=sub.user_id,
        method=method,
        payment_type=payment_type,
        amount=total.amount,
        currency=total.currency,
        rate=rate,
        tax=tax,
        processing_fee=fee,
        time_value=time_value,
        metadata=quote_metadata(basis, rates, now, **fields),
        memo=f"{_MEMO[payment_type]}: {sub.name}",
        levy=levy,
        withdrawn=charging.withdrawn,
    )
