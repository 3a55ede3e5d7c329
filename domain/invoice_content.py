"""Build an invoice's content from a booked payment, its subscription, seller and buyer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from domain.account_credit import vat_free_applied
from domain.credit import listed_rate, payment_meta
from domain.enums import SubscriptionPaymentType
from domain.exchange import fiat_to_msat, msat_to_fiat
from domain.invoice import (
    CREDIT_APPLIED_KEY,
    FEE_LINE,
    VAT_FREE_CREDIT_LINE,
    VAT_FREE_SUPPLY_SUFFIX,
    InvoiceContent,
    InvoiceLine,
    Party,
    is_outside_eu_supply,
    is_reverse_charge,
)
from domain.kept_invoice import charged_tax_rate, kept_lines, shown, shown_parts
from domain.model import Company, LineItem, Subscription, SubscriptionPayment, User
from domain.money import FIAT_MINOR_PER_MAJOR, MSAT_PER_BTC
from domain.nip19 import npub
from domain.overpayment import overpaid_of
from domain.prepayment import prepayment_line
from domain.shortfall import short_received_msat, shortfall_line
from domain.tax import country_alpha3, recorded_reverse_charge, tax_on

BTC = "BTC"
#: the invoice line of the account credit that paid part of a payment
CREDIT_LINE = "Account credit applied"
_KIND = {
    SubscriptionPaymentType.PURCHASE: "Purchase",
    SubscriptionPaymentType.RENEWAL: "Renewal",
    SubscriptionPaymentType.UPGRADE: "Upgrade",
}


def _lines(*parts: str | None) -> tuple[str, ...]:
    return tuple(p for p in parts if p)


def _party(
    name: str,
    street: tuple[str | None, str | None],
    postcode: str | None,
    city: str | None,
    state: str | None,
    country_code: str | None,
    tax_id: str | None,
    email: str | None = None,
) -> Party:
    """A party's postal block: street lines, "postcode city", state; the country as alpha-3."""
    return Party(
        name=name,
        address=_lines(*street, " ".join(_lines(postcode, city)) or None, state),
        country=country_alpha3(country_code) or country_code,
        tax_id=tax_id,
        email=email,
    )


def seller_party(company: Company) -> Party:
    return _party(
        company.name,
        (company.address_1, company.address_2),
        company.postcode,
        company.city,
        company.state,
        company.country_code,
        company.tax_id,
        company.email or None,
    )


def buyer_party(user: User) -> Party:
    return _party(
        user.billing_name or "",
        (user.billing_address_1, user.billing_address_2),
        user.billing_postcode,
        user.billing_city,
        user.billing_state,
        user.country_code,
        user.billing_tax_id,
    )


def reverse_charge_for(seller: Company, buyer: User) -> bool:
    """The buyer accounts for the VAT (validated EU VAT id, another EU country than the seller):
    quotes charge no tax, and the invoice says why."""
    return is_reverse_charge(
        country_alpha3(seller.country_code),
        country_alpha3(buyer.country_code),
        buyer.billing_tax_id,
        buyer.billing_vat_validated,
    )


def invoice_reverse_charge(
    meta: Mapping[str, object], rate: Decimal, tax: int, seller: Company, buyer: User
) -> bool:
    """Whether the invoice states reverse charge: as the quote decided it, with the tax it
    charged (`REVERSE_CHARGE_KEY`), not from the buyer's flags at completion, which an
    operator or the buyer may have changed since. A payment quoted before quotes recorded
    it is reverse charged if it charged no tax and the buyer qualifies now. Never with tax.
    """
    if tax != 0 or rate != 0:
        return False
    recorded = recorded_reverse_charge(meta)
    return reverse_charge_for(seller, buyer) if recorded is None else recorded


def invoice_outside_eu(
    lines: Sequence[InvoiceLine], reverse_charge: bool, seller: Company, buyer: User
) -> bool:
    """Whether the invoice states that no VAT is due because the buyer is outside the EU:
    no line charges any (every rate 0: a tax floored to 0 on a tiny amount at a real rate
    is no such case), it is not reverse charged, the seller is in the EU and the buyer's
    country, as printed, outside it. Never with tax."""
    untaxed = all(line.tax == 0 and line.tax_rate == 0 for line in lines)
    return (
        untaxed
        and not reverse_charge
        and is_outside_eu_supply(
            country_alpha3(seller.country_code), country_alpha3(buyer.country_code)
        )
    )


def invoice_currency(payment: SubscriptionPayment, subscription: Subscription) -> str:
    """A Lightning payment of a fiat-listed subscription is invoiced in that fiat currency
    (at the quote's own rate of it, `listed_rate`); anything else in the currency paid."""
    listed = subscription.currency.upper()
    if payment.currency.upper() == BTC and listed_rate(payment, listed) is not None:
        return listed
    return payment.currency.upper()


def credit_applied(payment: SubscriptionPayment, currency: str) -> int:
    """Ordinary account credit that paid part of the payment (`credit_applied` in its
    metadata, less its VAT-free part: `vat_free_credit`), in the invoice currency; a credit
    in BTC or in a fiat is converted at the quote's own rate of that fiat (`listed_rate`)."""
    raw: Any = payment_meta(payment).get(CREDIT_APPLIED_KEY)
    if not isinstance(raw, dict):
        return 0
    amount, unit = raw.get("amount"), str(raw.get("currency", currency)).upper()
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return 0
    vat_free = vat_free_applied(payment_meta(payment))
    charged = raw.get("charged")
    if isinstance(charged, int) and not isinstance(charged, bool):
        charged -= vat_free.net
    return _balance_units_in(
        payment, amount - min(vat_free.amount, amount), unit, currency, charged
    )


def vat_free_credit(payment: SubscriptionPayment, currency: str) -> tuple[int, int]:
    """(gross, VAT) of the VAT-free account credit that paid part of the payment, in the
    invoice currency (`domain.vat_free_credit`): its amount converted as ordinary credit is,
    and the VAT it paid (charged units) converted rounded UP, so the invoice never declares
    less VAT than the quote counted; (0, 0) for none."""
    raw: Any = payment_meta(payment).get(CREDIT_APPLIED_KEY)
    vat_free = vat_free_applied(payment_meta(payment))
    if not isinstance(raw, dict) or not vat_free.amount:
        return 0, 0
    unit = str(raw.get("currency", currency)).upper()
    worth = vat_free.net + vat_free.vat
    gross = _balance_units_in(payment, vat_free.amount, unit, currency, worth)
    return gross, min(gross, _charged_units_up(payment, vat_free.vat, currency))


def _balance_units_in(
    payment: SubscriptionPayment, amount: int, unit: str, currency: str, charged: object
) -> int:
    """`amount` of credit in `unit` in the invoice `currency`, at the quote's own rate;
    `charged`: its worth in the payment's units, for a Lightning payment's credit in
    another fiat than the invoice's (0 when no rate links them)."""
    if amount <= 0:
        return 0
    if unit == currency:
        return amount
    if unit == BTC and (rate := listed_rate(payment, currency)) is not None:
        return msat_to_fiat(amount, rate)
    if currency == BTC and (rate := listed_rate(payment, unit)) is not None:
        return fiat_to_msat(amount, rate)
    lightning = payment.currency.upper() == BTC
    if lightning and isinstance(charged, int) and not isinstance(charged, bool) and charged > 0:
        rate = listed_rate(payment, currency)
        if rate is not None:
            return msat_to_fiat(charged, rate)
    return 0  # no rate links the two currencies: the charged amounts stand alone


def _charged_units_up(payment: SubscriptionPayment, amount: int, currency: str) -> int:
    """`amount` of the payment's own units in the invoice `currency`, rounded up (msat of a
    Lightning payment invoiced in fiat at the quote's rate of it)."""
    if payment.currency.upper() == currency:
        return amount
    rate = listed_rate(payment, currency) if payment.currency.upper() == BTC else None
    if rate is None:
        return amount if currency == BTC else 0
    exact = Fraction(amount * FIAT_MINOR_PER_MAJOR) * Fraction(rate) / MSAT_PER_BTC
    return -(-exact.numerator // exact.denominator)


def vat_free_lines(what: str, gross: int, vat: int, rate: Decimal) -> list[InvoiceLine]:
    """The lines of VAT-free account credit (`vat_free_credit`: gross, VAT) that paid part
    of a taxed supply: the part of the supply it paid, its net and the VAT this invoice
    declares on it at the quote's rate (`VAT_FREE_SUPPLY_SUFFIX`), and the credit taken off
    whole (`VAT_FREE_CREDIT_LINE`, no VAT: none was paid on it when it was received). The
    two add up to nothing, so the invoice still adds up to what was charged outside; the
    credit's money was invoiced before as a prepayment without VAT, and its VAT is
    declared here, where it paid a supply. Credit notes never take either back
    (`domain.credit_note`): that time was paid with credit."""
    if gross <= 0:
        return []
    return [
        InvoiceLine(
            description=what + VAT_FREE_SUPPLY_SUFFIX, net=gross - vat, tax_rate=rate, tax=vat
        ),
        InvoiceLine(description=VAT_FREE_CREDIT_LINE, net=-gross, tax_rate=Decimal(0), tax=0),
    ]


def _service_lines(
    description: str, net: int, tax: int, credit: int, rate: Decimal
) -> list[InvoiceLine]:
    """The service line and, with account credit applied, the credit's own line.

    Credit is net value: it reduced the taxable base. The service line is the full value
    bought (the net charged plus the credit) with the tax that value bears at the quote's
    rate (D3); the credit line takes off the credit and the tax it spared, so the lines add
    up to the payment row (its net and its tax) and print the rate the payer was charged."""
    if not credit:
        return [InvoiceLine(description=description, net=net, tax_rate=rate, tax=tax)]
    # never below the tax charged: a Lightning payment's tax comes converted from msat
    # (rounded half up) and can exceed the floor of the full value in cents; the credit
    # line then takes off no tax rather than adding some
    full_tax = max(tax, tax_on(net + credit, rate))
    return [
        InvoiceLine(description=description, net=net + credit, tax_rate=rate, tax=full_tax),
        InvoiceLine(description=CREDIT_LINE, net=-credit, tax_rate=rate, tax=tax - full_tax),
    ]


def build_content(
    *,
    payment: SubscriptionPayment,
    subscription: Subscription,
    items: Sequence[LineItem],
    seller: Company,
    buyer: User,
    issued_at: datetime,
    supply: tuple[datetime, datetime] | None,
    kept_as_credit: bool = False,
) -> InvoiceContent:
    """The invoice of a paid payment: the service line (full value bought), any account
    credit applied as a line of its own (`_service_lines`), the processing fee as its
    own untaxed line, and what a Lightning payer sent beyond the total and was credited, as
    a taxed prepayment (`prepayment_line`); the lines add up to the payment row, converted
    as a whole, plus the prepayment's value (`btc_msat` then counts its msat too). The rate
    is the one the quote recorded; a payment from before quotes recorded it is read from
    its amounts (exact when no credit was applied).

    `kept_as_credit`: a payment booked without supplying anything, its whole value booked
    as account credit (an Upgrade not applied, a Purchase or Renewal whose VM cannot be
    provided again): its money is invoiced as a prepayment to account credit
    (`kept_payment_line`) instead of the service line, and the account credit it applied
    (given back in the same booking) is not shown; the lines add up to the payment row,
    but for a Lightning payment invoiced in fiat, whose prepayment is its amount converted
    as its credit was, rounded down (`kept_net`): they may then come to a unit less than
    the conversion of the whole row, the fraction of a unit that was neither credited nor
    invoiced.

    A Lightning payment an admin completed though the node received less than its total
    (`short_received_msat`) gets a `shortfall_line` before its fee: the lines then add up
    to what was received, converted as one, and `btc_msat` is that amount; kept as credit,
    the line takes off the prepayment, what arrived converted as its credit was, rounded
    down (`domain.kept_invoice.kept_lines`), so the prepayment's net is the credit booked."""
    cur = invoice_currency(payment, subscription)
    shown_rate = listed_rate(payment, cur) if cur != payment.currency.upper() else None
    meta = payment_meta(payment)
    rate = charged_tax_rate(payment)
    parts = net, tax, fee = shown_parts(payment, shown_rate)
    short = short_received_msat(payment)
    if kept_as_credit:  # its prepayment, less any shortfall (converted as its credit was)
        credit, lines = 0, kept_lines(payment, cur, shown_rate, short, parts)
    else:
        credit = credit_applied(payment, cur)
        names = ", ".join(item.name for item in items) or subscription.name
        what = f"{_KIND[payment.payment_type]}: {names}"
        gross, vat = vat_free_credit(payment, cur)
        if not rate:  # untaxed: VAT-free credit counted whole, as ordinary credit is
            credit, gross, vat = credit + gross, 0, 0
        lines = []
        if net or tax or credit or not gross:  # not when VAT-free credit paid it all
            lines = _service_lines(what, net, tax, credit, rate)
        if short is not None:  # an admin counted a short settlement as paid: bill what arrived
            billed_net, billed_tax = sum(x.net for x in lines), sum(x.tax for x in lines)
            arrived = shown(short, shown_rate)
            lines.append(shortfall_line(arrived, fee, billed_net, billed_tax, rate))
        lines += vat_free_lines(what, gross, vat, rate)
        credit += gross
    if fee:
        lines.append(InvoiceLine(description=FEE_LINE, net=fee, tax_rate=Decimal(0), tax=0))
    excess = overpaid_of(meta)
    prepaid = prepayment_line(excess, cur)  # money kept as credit bears its VAT here
    if prepaid is not None:
        lines.append(prepaid)
    seller_p, buyer_p = seller_party(seller), buyer_party(buyer)
    reverse = invoice_reverse_charge(meta, rate, tax, seller, buyer)
    lightning = payment.currency.upper() == BTC
    received = payment.total + (excess.msat if prepaid is not None and excess else 0)
    if short is not None:
        received = short
    return InvoiceContent(
        seller=seller_p,
        buyer=buyer_p,
        buyer_npub=npub(buyer.pubkey),
        issued_at=issued_at,
        supply_from=None if supply is None else supply[0],
        supply_to=None if supply is None else supply[1],
        currency=cur,
        lines=tuple(lines),
        payment_id=payment.id.hex(),
        payment_method=payment.payment_method.display_name,
        credit_applied=credit,
        credit_line=credit > 0,
        btc_msat=received if lightning else None,
        btc_rate=shown_rate if lightning else None,
        reverse_charge=reverse,
        overpaid=excess,
        short_msat=None if short is None else payment.total - short,
        outside_eu=invoice_outside_eu(lines, reverse, seller, buyer),
    )
