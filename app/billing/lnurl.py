"""Pay-what-you-want renewal through an LNURL-pay callback (LUD-06; pricing.md §7)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fractions import Fraction

import attrs

from app.billing.catalogue import charging_for, owned_vm, subscription_of, vm_price
from app.billing.errors import AmountOutOfRange, TooManyOpenInvoices, VmNotPaidYet
from app.billing.persist import (
    AMOUNT_MSAT_KEY,
    AmountReuse,
    Locked,
    UnderLock,
    is_lnurl_payment,
    store_payment,
)
from app.billing.price_in_force import fresh_rates, price_in_force, quote_metadata
from app.billing.rails import PaymentRails, PricedPayment
from domain.credit import MAX_BY_AMOUNT_INTERVALS, payment_meta, value_anchor
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.errors import ExtendTimeTooShort, InvalidInterval
from domain.exchange import RateTable, charge_amount
from domain.intervals import renewal_base, whole_seconds
from domain.model import Subscription, SubscriptionPayment, Vm
from domain.money import MSAT_PER_SAT, Currency
from domain.price_basis import PriceBasis, exact_value, intervals_bought
from domain.pricing import Charging, ExtendTimeTooLong, FreePriceNotScalable, levy_of
from domain.subscription import INTERVALS_KEY
from domain.switch_off import refuse_switched_off
from domain.tax import REVERSE_CHARGE_KEY, TAX_RATE_KEY, TaxRates
from domain.value_grid import extend_by
from ports.clock import Clock
from ports.rates import RateStore
from ports.storage import UnitOfWork, UnitOfWorkFactory

#: LNURL-pay amounts: the payRequest advertises `LNURL_MIN_MSAT` as minSendable and the
#: callback refuses less (D25; the reference advertised 100 sat and took 1); maxSendable is
#: `LNURL_MAX_MSAT` or, lower, what `MAX_BY_AMOUNT_INTERVALS` (D6's 120) intervals of the VM
#: cost at the price in force (`max_sendable`), and the callback refuses more.
LNURL_MIN_MSAT = 100_000
LNURL_MAX_MSAT = 1_000_000_000
#: live LNURL invoices one VM may have at once (D25): with the per-address rate limit this
#: bounds the rows and node invoices strangers can make for it, even from many addresses.
LNURL_MAX_LIVE_INVOICES = 20
#: live LNURL invoices of one VM that one client network may have made (D25): well below the
#: VM's cap, so one stranger cannot fill it and lock the owner's wallet out for minutes.
LNURL_MAX_LIVE_PER_CLIENT = 5
#: `metadata` key of an LNURL invoice: the client network that asked for it (the widest key
#: of the per-address rate limit: an IPv4 address or an IPv6 /48), counted against
#: `LNURL_MAX_LIVE_PER_CLIENT` while the invoice is live
LNURL_CLIENT_KEY = "lnurl_client"
NOT_PAID_YET = (
    "This VM has not been paid for yet: its owner pays the first invoice from their account"
)


async def require_paid_once(uow: UnitOfWork, sub: Subscription) -> None:
    """LNURL only tops up a VM that was paid for once (D25).

    The endpoints are unauthenticated and take any amount, so a stranger could otherwise
    set up someone's never-paid order for a few sats (the reference provisioned one for
    18 minutes on 1 sat): the VM is then built, takes an address, leaves the never-paid
    cleanup and holds its host room through a grace period. The first payment goes through
    the owner's signed renew request, which buys at least one whole interval. A VM given
    time without a payment (`in_service`: an operator's expiry, an adopted comped VM) may
    be topped up like a paid one, unless its subscription still owes a setup fee: an LNURL
    payment is priced as a renewal, and completing it would mark the subscription set up
    with its setup fee never charged (the owner's renew request is a Purchase that does).
    """
    if not sub.in_service:
        raise VmNotPaidYet(NOT_PAID_YET)
    if not sub.is_setup:
        items = await uow.line_items.list_by_subscription(sub.id)
        if any(item.setup_amount > 0 for item in items):
            raise VmNotPaidYet(NOT_PAID_YET)


@attrs.frozen(kw_only=True)
class LnurlOffer:
    """What the payRequest of a VM's Lightning address advertises: the amounts its callback
    takes, in msat, tax included (`min_msat`..`max_msat`)."""

    vm: Vm
    min_msat: int
    max_msat: int


@attrs.frozen(kw_only=True)
class _Terms:
    """What an LNURL amount is valued at now: the price in force (D23), the rate table, the
    buyer's charging (tax) and the BTC rates a quote stores (`fresh_rates`), which its
    completion values it at."""

    basis: PriceBasis
    table: RateTable
    charging: Charging
    rates: dict[Currency, Decimal]


async def _terms(
    uow: UnitOfWork, sub: Subscription, rates: RateStore, tax_rates: TaxRates, now: datetime
) -> _Terms:
    basis = await price_in_force(uow, sub, purchase=False)  # completion values it (D23)
    table = await rates.table()
    charging = await charging_for(
        uow,
        method=PaymentMethod.LIGHTNING,
        rates=table,
        tax_rates=tax_rates,
        user_id=sub.user_id,
        company_id=sub.company_id,
    )
    return _Terms(basis=basis, table=table, charging=charging, rates=fresh_rates(table, now))


def max_sendable(terms: _Terms) -> int | None:
    """The most msat (whole sats, tax included, at most `LNURL_MAX_MSAT`) whose net buys no
    more than `MAX_BY_AMOUNT_INTERVALS` intervals at the price in force, valued as its
    completion values it (`intervals_bought` at the quote's own rates); None when the price
    cannot be valued in BTC (a rate missing, a free price)."""
    price = exact_value(terms.basis.recurring, Currency.BTC, terms.rates)
    setup = exact_value(terms.basis.setup, Currency.BTC, terms.rates)
    if price is None or setup is None or price <= 0:
        return None
    most = setup + MAX_BY_AMOUNT_INTERVALS * price
    most_net = most.numerator // most.denominator
    # the largest gross whose net, floor(gross × 100 / (100 + rate)), is at most `most_net`
    bound = Fraction(most_net + 1) * (100 + Fraction(terms.charging.tax_rate)) / 100
    gross = -(-bound.numerator // bound.denominator) - 1
    return min(LNURL_MAX_MSAT, gross // MSAT_PER_SAT * MSAT_PER_SAT)


async def lnurl_offer(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rates: RateStore,
    tax_rates: TaxRates,
    vm_id: int,
) -> LnurlOffer:
    """The payRequest of the live VM behind a Lightning address: refused before its first
    payment (D25) and once an admin switched its subscription off (`domain.switch_off`);
    its maxSendable is what `MAX_BY_AMOUNT_INTERVALS` intervals cost (`max_sendable`), so a
    wallet never offers an amount its callback refuses. A price that cannot be valued, or
    whose 120 intervals cost less than `LNURL_MIN_MSAT`, is refused (`FreePriceNotScalable`,
    `AmountOutOfRange`): no amount could be taken."""
    now = clock.now()
    async with uow_factory() as uow:
        vm = await owned_vm(uow, vm_id, None)
        sub = await subscription_of(uow, vm)
        refuse_switched_off(sub)
        await require_paid_once(uow, sub)
        terms = await _terms(uow, sub, rates, tax_rates, now)
    return LnurlOffer(vm=vm, min_msat=LNURL_MIN_MSAT, max_msat=_most_msat(terms))


def _most_msat(terms: _Terms) -> int:
    """`max_sendable`, refused when no amount could be taken: a price that cannot be valued
    (`FreePriceNotScalable`) or 120 intervals cheaper than `LNURL_MIN_MSAT`."""
    most = max_sendable(terms)
    if most is None:
        raise FreePriceNotScalable("This VM's price cannot be paid by amount now")
    if most < LNURL_MIN_MSAT:
        raise AmountOutOfRange(
            f"This VM cannot be topped up by Lightning address: {MAX_BY_AMOUNT_INTERVALS} "
            f"billing intervals of it cost less than the minimum of {LNURL_MIN_MSAT} msat"
        )
    return most


def tax_exclusive(gross: int, rate_percent: Decimal) -> int:
    """The net part of a tax-inclusive amount: floor(gross × 100 / (100 + rate))."""
    exact = Fraction(gross * 100) / (100 + Fraction(rate_percent))
    return exact.numerator // exact.denominator


def refuse_too_many_open(pending: list[SubscriptionPayment], client: str | None) -> None:
    """Refuse a new LNURL invoice once the VM has `LNURL_MAX_LIVE_INVOICES` live ones, or
    `client` has `LNURL_MAX_LIVE_PER_CLIENT` of them (`TooManyOpenInvoices`, 422).

    Counted from the invoices' metadata in the read that lists them, so the count is exactly
    the live rows. `renew_by_amount` asks before the node makes an invoice (a refusal costs
    the node nothing) and again under the subscription's lock just before storing it: two
    concurrent callbacks both passing the first read cannot then pass the cap together.
    """
    live = [p for p in pending if is_lnurl_payment(p)]  # `pending`: the live ones
    if client is not None:
        mine = sum(1 for p in live if payment_meta(p).get(LNURL_CLIENT_KEY) == client)
        if mine >= LNURL_MAX_LIVE_PER_CLIENT:
            raise TooManyOpenInvoices(
                "Too many open invoices from your address for this VM:"
                " pay one or try again in a few minutes"
            )
    if len(live) >= LNURL_MAX_LIVE_INVOICES:
        raise TooManyOpenInvoices(
            "Too many open invoices for this VM: pay one or try again in a few minutes"
        )


async def renew_by_amount(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    rates: RateStore,
    tax_rates: TaxRates,
    *,
    vm_id: int,
    amount_msat: int,
    client: str | None = None,
) -> SubscriptionPayment:
    """A Lightning Renewal payment buying whatever time `amount_msat` pays for (LNURL-pay).

    Takes the VM id (the reference passed the subscription id as one, §16.14). Amounts below
    the advertised minSendable, above maxSendable or not whole sats are refused, and so is
    a VM never paid for (`require_paid_once`) or switched off by an admin. A live invoice
    for the same VM and amount is returned again instead of a new one (D25), also when two
    requests race.

    LUD-06 wallets check that the invoice is for exactly the amount they asked for, so the
    amount is tax-inclusive (the reference added tax on top, breaking payment for taxed
    users): net = floor(amount × 100 / (100 + rate)), tax = amount − net. The time bought
    is what completion books for it at the same price and rates (D23): `intervals_bought`
    at the price in force and the BTC rates the quote stores, `extend_by` from
    max(expires, now) on the subscription's grid (`value_anchor`), so the memo's date and
    `time_value` are what a completion now books.
    An amount buying more than `MAX_BY_AMOUNT_INTERVALS` (D6's 120) is refused, as above
    the advertised maxSendable (`max_sendable`). Its `metadata` carries
    `{"intervals": null}` so D10 never mistakes it for an N-interval one.
    Anyone may pay for a VM, so there is no owner check; a deleted VM is "not found".
    `client` is the asking client's network (None: not known); its live invoices of this VM
    are bounded apart from the VM's (`refuse_too_many_open`).
    """
    if not LNURL_MIN_MSAT <= amount_msat <= LNURL_MAX_MSAT:
        raise AmountOutOfRange(f"Amount must be between {LNURL_MIN_MSAT} and {LNURL_MAX_MSAT} msat")
    if amount_msat % MSAT_PER_SAT:
        raise AmountOutOfRange("Amount must be a whole number of satoshis")
    rails.refuse_lightning(PaymentMethod.LIGHTNING)  # a fiat-only shop: no LNURL
    now = clock.now()
    async with uow_factory() as uow:
        vm = await owned_vm(uow, vm_id, None)
        sub = await subscription_of(uow, vm)
        refuse_switched_off(sub)
        await require_paid_once(uow, sub)
        reuse = AmountReuse(subscription_id=sub.id, amount_msat=amount_msat)
        pending = await uow.payments.list_pending_for_subscription(sub.id, now)
        existing = next((p for p in pending if reuse.matches(p, now)), None)
        if existing is not None:
            return existing
        refuse_too_many_open(pending, client)
        price = await vm_price(uow, vm)
        terms = await _terms(uow, sub, rates, tax_rates, now)
    # the BTC rate of the VM's list currency (the row's `rate` column); raises without one
    one = charge_amount(price.list_price, PaymentMethod.LIGHTNING, terms.table, now)
    net = tax_exclusive(amount_msat, terms.charging.tax_rate)
    bought = intervals_bought(net, Currency.BTC, terms.basis, terms.rates)
    if bought is None:
        raise FreePriceNotScalable("A free plan cannot be extended by amount")
    if bought > MAX_BY_AMOUNT_INTERVALS:
        most = _most_msat(terms)  # refuses a VM no amount can top up, in its own words
        raise AmountOutOfRange(
            f"Amount must be between {LNURL_MIN_MSAT} and {most} msat for this VM: more "
            f"would buy over {MAX_BY_AMOUNT_INTERVALS} billing intervals"
        )
    base = renewal_base(sub.expires, now)
    try:
        new_expiry = extend_by(terms.basis.interval, value_anchor(sub), base, bought)
    except (InvalidInterval, OverflowError):
        raise ExtendTimeTooLong("Extend time is too long") from None
    time_value = whole_seconds(new_expiry - base)
    if time_value == 0:
        raise ExtendTimeTooShort("Extend time is less than 1 second")
    _, fee = levy_of(terms.charging, Currency.BTC, now)(net)
    priced = PricedPayment(
        subscription_id=sub.id,
        user_id=sub.user_id,
        method=PaymentMethod.LIGHTNING,
        payment_type=SubscriptionPaymentType.RENEWAL,
        amount=net,
        currency=Currency.BTC,
        rate=one.rate,
        tax=amount_msat - net,
        processing_fee=fee,
        time_value=time_value,
        metadata=quote_metadata(
            terms.basis,
            terms.table,
            now,
            **{
                INTERVALS_KEY: None,
                AMOUNT_MSAT_KEY: amount_msat,
                TAX_RATE_KEY: str(terms.charging.tax_rate),
                REVERSE_CHARGE_KEY: terms.charging.reverse_charge,
            },
            **({} if client is None else {LNURL_CLIENT_KEY: client}),
        ),
        memo=f"VM renewal {vm.id} to {new_expiry:%Y-%m-%d %H:%M:%S}",
    )
    payment = await rails.create(priced, now)

    async def recount(at: Locked) -> None:
        """The caps again, under the subscription's lock `store_payment` holds."""
        live = await at.uow.payments.list_pending_for_subscription(at.payment.subscription_id, now)
        refuse_too_many_open(live, client)

    return await store_payment(
        uow_factory, rails, payment, now, reuse=reuse, idem=None, checks=[UnderLock(recount)]
    )
