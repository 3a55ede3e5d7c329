"""A payment for a service that cannot be delivered, or what a payer sent beyond its invoice,
becomes account credit, once."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from app.billing.booked_records import money_text
from app.billing.credit_balance import Booked, book_in
from app.billing.credit_release import book_released
from domain.account_credit import (
    MAX_NOTE,
    CreditReason,
    checked_entry,
    credit_applied,
    vat_free_applied,
)
from domain.credit import payment_meta
from domain.credit_conversion import Converted, convert_at, noted
from domain.errors import DomainError
from domain.kept_invoice import kept_credit
from domain.model import SubscriptionPayment
from domain.money import Currency, Money
from domain.overpayment import Overpaid, excess_value, prepayment_split
from domain.prepayment import kept_value_split, kept_vat_free, prepayment_tax_rate
from domain.price_basis import RATES_KEY, quote_btc_rate, rates_from_json
from domain.shortfall import short_of, short_received_msat
from ports.storage import UnitOfWork


class Credited(NamedTuple):
    """What `credit_unrestorable` booked: the value's credit (smallest units of the list
    currency; 0: nothing now) and the applied credit given back apart (`applied_elsewhere`)
    as text for the notices, `EUR 1.00` ("" when none is). `on_balance`: the payment's
    value is account credit: booked now, by an earlier call (a replay books nothing but
    says the same), or nothing to book (no money part: paid wholly by credit, given back
    apart); False when it could not be valued, so its notices say nothing was credited."""

    booked: int
    given_back: str
    on_balance: bool = False


async def credit_unrestorable(
    uow: UnitOfWork,
    payment: SubscriptionPayment,
    list_currency: str,
    why: str,
    unpaid_credit: int = 0,
    short_msat: int | None = None,
    unpaid_vat_free: int = 0,
    *,
    invoice_declared: bool = False,
) -> Credited:
    """In the completion transaction: a payment for a service that can no longer be
    delivered (its host gone, its offer withdrawn) becomes credit instead of time; the credit
    booked (smallest units of `list_currency`), 0 when it cannot be valued (`Credited`).

    The value is what was received (amount, tax excluded, plus the credit it applied) in
    `list_currency` (the subscription's, whose renewals spend it: an upgrade priced in
    another currency too, converted at its quote's rates as a card below is), at the
    quote's own BTC rate of that currency for a Lightning payment, exactly and rounded
    down (`excess_value`: the payer is never credited more than arrived); without one
    (`quote_btc_rate`: never the row's `rate` column) nothing is booked (0). A card payment
    in another fiat (its plan re-priced, or an upgrade priced, in another currency) is
    converted at the quote's own BTC rates of both, rounded down, and the entry's note
    says at which; without them nothing is booked (0). The value is credited whole or
    not at all, and is a prepayment, which the payment's invoice bills instead of the
    service (`kept_payment_line`), the credit being the line's net (`kept_value_split`): a
    Purchase's or Renewal's value is its row's net, its VAT charged on top and declared on
    that line at the quote's rate; an Upgrade's own money (it charged no tax) is credited
    whole as VAT-free credit (`kept_vat_free`: no VAT declared now; the taxed supply it
    later pays declares it). The credit it applied comes back whole, each kind (ordinary,
    VAT-free) as it was spent (but for VAT-free credit whose VAT the payment's issued
    invoice declared, `invoice_declared`: ordinary credit at its net, `declared_back`), in
    its own currency: within this
    entry when that is `list_currency`, else as an entry of its own (`applied_elsewhere`,
    booked even when the value cannot be), which the returned amount does not count. The
    invoice's prepayment line of a Lightning payment is this same value, converted the same
    way (`domain.kept_invoice.kept_net`), when the invoice is in the credit's currency;
    a card paid in another fiat than the credit's is shown in the fiat paid. A short
    settlement an admin completes as paid (`short_msat`, what arrived, as the booking
    records it after this: `AdminCompletion.short_received_msat`; read from the payment when
    not given) is worth what arrived, not its amount: the prepayment net its invoice states
    once its shortfall line took off what never came (`domain.kept_invoice.kept_credit`,
    rounded down as well).
    Booked once per payment (reference: its id; the credit given back apart: its id +
    `APPLIED_SUFFIX`), so replays change nothing. Called by the
    booking (`app.billing.completion`) for a payment whose deleted VM cannot be restored
    (`app.billing.restorable`), or whose late order or upgrade its host has no room left for,
    behind its `is_paid` gate.
    """
    # the applied credit comes back as it was, in its own units, but for what was released
    # and spent elsewhere before this payment came (`unpaid_credit`: it was never paid);
    # in another currency than the value's, as an entry of its own
    back = _applied_back(payment, unpaid_credit)
    # the VAT-free part of the applied credit comes back VAT-free (`vat_free_back`)
    back_vat_free = vat_free_back(payment, unpaid_vat_free) if back is not None else 0
    if invoice_declared and back is not None and back_vat_free:
        back, back_vat_free = declared_back(payment, back, back_vat_free)
    elsewhere = applied_elsewhere(back, list_currency)
    given_back = "" if elsewhere is None else money_text(elsewhere[1], elsewhere[0])
    if elsewhere is not None:
        await _give_back_applied(uow, payment, elsewhere, why, back_vat_free)
    try:
        target = Currency.parse(list_currency)
        charged = Currency.parse(payment.currency)
    except DomainError:
        return Credited(0, given_back)
    received = payment.amount
    already = back[0] if back is not None and elsewhere is None else 0
    already_vat_free = back_vat_free if already else 0
    # the quote's own rate of the target currency (its `rate` column is its price
    # currency's, which is another one when a plan was re-priced in another currency, and
    # 1 for a BTC price; a row without stored rates does not say which: none is used)
    rate = quote_btc_rate(payment_meta(payment), target)
    note = why
    short = short_received_msat(payment) if short_msat is None else short_of(payment, short_msat)
    if short is not None and (target is Currency.BTC or rate is not None):
        # what arrived, net of VAT and fee, as its invoice's prepayment states it
        shown_rate = None if target is Currency.BTC else rate
        net = kept_credit(payment, target.value, shown_rate, short)
    elif short is not None:  # no rate to value what arrived in the list currency
        return Credited(0, given_back)
    else:
        worth = _worth(payment, charged, target, received)
        if worth is None:
            return Credited(0, given_back)
        value, converted = worth
        if converted is not None:
            note = noted(why, converted)
        net = kept_value_split(value, payment)[0]  # all of it: no VAT is declared on it now
    total = net + already
    # an untaxed upgrade's money bore no VAT: it is VAT-free credit, with any such credit
    # the payment had applied and gets back in this entry
    value_vat_free = net if kept_vat_free(payment) and net > 0 else 0
    if total <= 0:
        # no money part (paid wholly by credit, given back apart): nothing was left to credit
        return Credited(0, given_back, on_balance=received == 0 and short is None)
    booked = await _book_payment_credit(
        uow,
        payment,
        Money(target, total),
        reference=payment.id.hex(),
        note=note,
        vat_free=value_vat_free + already_vat_free,
    )
    return Credited(0 if booked.replayed else total, given_back, on_balance=True)


def _worth(
    payment: SubscriptionPayment, charged: Currency, target: Currency, amount: int
) -> tuple[int, Converted | None] | None:
    """`amount` smallest units of `charged` (the payment's currency) in `target`, rounded
    down: as it is in the same currency; from msat at the quote's own BTC rate of `target`
    (`excess_value`: never credited more than arrived); a card paid in another fiat at the
    quote's own rates of both (`convert_at`, also returned, for the entry's note). None
    without the rates it needs."""
    if charged is target:
        return amount, None
    if charged is Currency.BTC and target.is_fiat:
        rate = quote_btc_rate(payment_meta(payment), target)
        return None if rate is None else (excess_value(amount, target, rate) or 0, None)
    stored = rates_from_json(payment_meta(payment).get(RATES_KEY))
    converted = convert_at([Money(charged, amount)], target, stored)
    return None if converted is None else (converted.money.amount, converted)


#: the ledger reference of what a capped payment received beyond the time it was given
#: (`Credit.uncounted`): the payment's id and this suffix
CAPPED_SUFFIX = "/capped"


class RestCredited(NamedTuple):
    """What `credit_uncounted` booked: the credit (smallest units of `currency`; 0: nothing
    could be valued) and whether an earlier call had booked it already."""

    credited: int
    currency: str
    replayed: bool = False

    @property
    def text(self) -> str:
        """`EUR 8.50`, or "" when nothing was credited."""
        return money_text(self.currency, self.credited) if self.credited else ""


async def credit_uncounted(
    uow: UnitOfWork,
    payment: SubscriptionPayment,
    list_currency: str,
    uncounted: int,
    cap: int,
    *,
    past_calendar: bool = False,
) -> RestCredited:
    """In the completion transaction, behind its `is_paid` gate: what a payment credited by
    value received beyond the `cap` intervals it was given (`Credit.uncounted`, net of tax,
    in the payment's own currency: an LNURL payment made worth more than 120 intervals by a
    price cut after its invoice) booked as account credit of the payment's user (the
    subscription's owner: an LNURL payer is anonymous) in `list_currency`, rounded down.

    It is part of the payment's net amount, on which its invoice charged the VAT already:
    the credit is that net value, as a payment kept as credit is (`credit_unrestorable`),
    never taxed twice. Valued at the quote's own rates (`_worth`); without them nothing is
    booked (credited 0) and the caller says so. Booked once per payment (reference: its id +
    `CAPPED_SUFFIX`), so a replay books nothing more. `past_calendar`: no time at all could
    be added, its end would fall past year 9999 (`Credit.past_calendar`), and `uncounted` is
    all it received.
    """
    try:
        target = Currency.parse(list_currency)
        charged = Currency.parse(payment.currency)
    except DomainError:
        return RestCredited(0, list_currency)
    worth = _worth(payment, charged, target, uncounted)
    if worth is None or worth[0] <= 0:
        return RestCredited(0, target.value)
    value, converted = worth
    note = (
        f"payment {payment.id.hex()} was worth more than the {cap} intervals it could buy: "
        "the rest is credited"
    )
    if past_calendar:
        note = (
            f"payment {payment.id.hex()} would have extended its subscription past the end "
            "of the calendar (year 9999): no time was added, its value is credited"
        )
    if converted is not None:
        note = noted(note, converted)
    booked = await _book_payment_credit(
        uow, payment, Money(target, value), reference=payment.id.hex() + CAPPED_SUFFIX, note=note
    )
    return RestCredited(booked.entry.amount, target.value, booked.replayed)


#: the ledger reference of the credit a payment applied, given back apart from its value
#: (`applied_elsewhere`: the value is credited in another currency than that credit's)
APPLIED_SUFFIX = "/applied"


def _applied_back(payment: SubscriptionPayment, unpaid_credit: int) -> tuple[int, str] | None:
    """The credit `payment` applied (amount, currency), less what was released and spent
    elsewhere before it came (`unpaid_credit`); None when nothing is left of it."""
    applied = credit_applied(payment_meta(payment))
    if applied is None or applied[0] - unpaid_credit <= 0:
        return None
    return applied[0] - unpaid_credit, applied[1]


def declared_back(
    payment: SubscriptionPayment, back: tuple[int, str], back_vat_free: int
) -> tuple[tuple[int, str], int]:
    """`back` (the applied credit coming back) and its VAT-free part, for a payment whose
    invoice was issued as a supply and declared the VAT that VAT-free credit paid (a renewal
    overtaken by its VM's deletion, `app.billing.overtaken`): that part comes back as
    ordinary credit worth its net, rounded down, never VAT-free again, or the next taxed
    supply it paid would declare the same VAT a second time (review r22). Credit that paid
    no VAT (an untaxed quote) comes back as it was."""
    declared = vat_free_applied(payment_meta(payment))
    if declared.vat <= 0:
        return back, back_vat_free
    worth = declared.net + declared.vat
    net_part = back_vat_free * declared.net // worth
    return (back[0] - (back_vat_free - net_part), back[1]), 0


def vat_free_back(payment: SubscriptionPayment, unpaid_vat_free: int) -> int:
    """The VAT-free part of the credit `payment` applied that comes back (`_applied_back`):
    what it applied of that kind less what of it was released and spent elsewhere."""
    applied = credit_applied(payment_meta(payment))
    vat_free = vat_free_applied(payment_meta(payment)).amount
    if applied is None:
        return 0
    return max(0, min(vat_free, applied[0]) - unpaid_vat_free)


def applied_elsewhere(back: tuple[int, str] | None, list_currency: str) -> tuple[int, str] | None:
    """The credit a payment booked as credit (`credit_unrestorable`) applied and gets back
    as an entry of its own (amount, currency): the part of it that was paid (`back`:
    `_applied_back`), when its currency is not `list_currency`, the one the payment's value
    is credited in (an admin moved the subscription to another currency after the quote).
    None otherwise: in the same currency it comes back within the value's entry."""
    if back is None:
        return None
    try:
        same = back[1] == Currency.parse(list_currency).value
    except DomainError:
        same = back[1] == list_currency
    return None if same else back


async def _give_back_applied(
    uow: UnitOfWork, payment: SubscriptionPayment, back: tuple[int, str], why: str, vat_free: int
) -> None:
    """Book `back`, the credit `payment` applied, as it was, in its own currency: a RELEASED
    entry, as the credit of any quote that bought nothing comes back, under the payment's
    id + `APPLIED_SUFFIX`, so replays book it once."""
    _, currency = back
    note = f"{why}; the account credit it applied comes back in {currency}"
    created = payment.paid_at or payment.created
    reference = payment.id.hex() + APPLIED_SUFFIX
    await book_released(
        uow, payment, reference, back, note[:MAX_NOTE], created, payment.id, vat_free=vat_free
    )


#: the ledger reference of an excess: the payment's id and this suffix (its value for a
#: payment that could not be delivered is booked under the bare id, so both can exist)
EXCESS_SUFFIX = "/excess"


async def credit_excess(
    uow: UnitOfWork, payment: SubscriptionPayment, list_currency: str, msat: int
) -> Overpaid:
    """In the completion transaction, behind its `is_paid` gate: `msat` a Lightning payer sent
    beyond the payment's total, booked as account credit in `list_currency` (the
    subscription's), valued at the quote's own BTC rate of it, exactly and rounded down.

    Kept for later supplies, it is a prepayment and bears VAT now: the credit is its value
    net of VAT at the buyer's rate for taxed supplies (`prepayment_split` at
    `prepayment_tax_rate`: the rate the quote charged; all of it at 0 %, e.g. under reverse
    charge), and the payment's invoice, issued after this in the same transaction, declares
    the net and the VAT on a line of its own (`prepayment_line`).
    Credit is net value (it pays what it buys net of tax), so the VAT is declared once.
    An untaxed upgrade's excess (`kept_vat_free`) bore no VAT, as the upgrade did not: all of
    it is VAT-free credit, as an upgrade not applied is kept (`credit_unrestorable`), its
    line at 0 %; the taxed supply it later pays declares its VAT (`domain.vat_free_credit`),
    and an upgrade it pays counts it whole. (Taxed at the buyer's renewal rate, as it was,
    EUR 10.00 overpaid at 23 % became 8.13 of net credit, 1.87 of VAT declared on money that
    could then pay an untaxed upgrade as 8.13.)

    Booked once per payment (reference: its id + `EXCESS_SUFFIX`), so a replay books nothing
    more. `credited` is 0 when the excess is worth less than one unit or cannot be valued
    (no rate of that currency in the quote); the caller records it either way.
    """
    note = f"paid {msat} msat more than the invoice of payment {payment.id.hex()}"
    excess, _ = await _credit_msat(
        uow, payment, list_currency, msat, EXCESS_SUFFIX, note, payment.paid_at or payment.created
    )
    return excess


#: the ledger reference of a settlement met after an admin had completed its payment
SETTLED_AFTER_ADMIN_SUFFIX = "/settled-after-admin"


async def credit_settled_after_admin(
    uow: UnitOfWork,
    payment: SubscriptionPayment,
    list_currency: str,
    msat: int,
    now: datetime,
) -> tuple[Overpaid, bool]:
    """`msat` that the Lightning node received for a payment an admin had already completed
    without it (`app.billing.paid_after_admin`): all of it booked as account credit in
    `list_currency`, valued as an excess is, net of VAT as a prepayment (`credit_excess`;
    an untaxed upgrade's whole, as VAT-free credit), and whether an earlier call had booked
    it already (then nothing more is). The payment's invoice was issued at the admin's
    completion, so no invoice declares this VAT: the caller tells the admins to invoice it.

    Booked once per payment (reference: its id + `SETTLED_AFTER_ADMIN_SUFFIX`): an invoice
    settles once, so the stream, its replays and a reconciliation meeting that settlement
    book it once between them, whatever their race.
    """
    note = f"paid {msat} msat for payment {payment.id.hex()} after an admin had completed it"
    return await _credit_msat(
        uow, payment, list_currency, msat, SETTLED_AFTER_ADMIN_SUFFIX, note, now
    )


async def _credit_msat(
    uow: UnitOfWork,
    payment: SubscriptionPayment,
    list_currency: str,
    msat: int,
    suffix: str,
    note: str,
    created: datetime,
) -> tuple[Overpaid, bool]:
    """`msat` of `payment` booked as credit in `list_currency` under the payment's id +
    `suffix`, net of the VAT at `prepayment_tax_rate`; what was credited and its VAT, and
    whether it had been booked before (replayed). An excess worth less than one unit once its VAT is
    taken is not booked (credited 0), as one worth less than a unit never was."""
    try:
        target = Currency.parse(list_currency)
    except DomainError:
        target = Currency.BTC  # an unknown list currency: keep what arrived, in msat
    rate = None if target is Currency.BTC else quote_btc_rate(payment_meta(payment), target)
    value = excess_value(msat, target, rate)
    vat_free = kept_vat_free(payment)
    # an untaxed upgrade's money bore no VAT: kept whole, VAT-free, as its own value is
    tax_rate = Decimal(0) if vat_free else prepayment_tax_rate(payment)
    net, tax = prepayment_split(value or 0, tax_rate)
    if not net:  # nothing, or too little to leave a unit once its VAT is taken
        return Overpaid(msat=msat, credited=0, currency=target.value), False
    booked = await _book_payment_credit(
        uow,
        payment,
        Money(target, net),
        reference=payment.id.hex() + suffix,
        note=note,
        created=created,
        vat_free=net if vat_free else 0,
    )
    excess = Overpaid(
        msat=msat,
        credited=net,
        currency=target.value,
        tax=tax,
        tax_rate=tax_rate,
        vat_free=vat_free,
    )
    return excess, booked.replayed


async def _book_payment_credit(
    uow: UnitOfWork,
    payment: SubscriptionPayment,
    credit: Money,
    *,
    reference: str,
    note: str,
    created: datetime | None = None,
    vat_free: int = 0,
) -> Booked:
    """Book `credit` on the payer's balance as an OVERPAYMENT entry of `payment`, once per
    `reference` (a replay answers the entry booked before), dated when the payment was paid
    unless `created` says otherwise; the note cut to what the ledger keeps."""
    return await book_in(
        uow,
        checked_entry(
            user_id=payment.user_id,
            currency=credit.currency.value,
            amount=credit.amount,
            reason=CreditReason.OVERPAYMENT,
            reference=reference,
            note=note[:MAX_NOTE],
            created=created or payment.paid_at or payment.created,
            payment_id=payment.id,
            vat_free=vat_free,
        ),
    )
