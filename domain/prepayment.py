"""Money a payer sent beyond an invoice, kept as account credit: a prepayment that bears VAT."""

from __future__ import annotations

from decimal import Decimal

from domain.credit import payment_meta
from domain.enums import SubscriptionPaymentType
from domain.invoice import InvoiceLine, effective_tax_rate
from domain.model import SubscriptionPayment
from domain.overpayment import Overpaid, prepayment_split
from domain.tax import CREDIT_TAX_RATE_KEY, recorded_tax_rate

#: the invoice line of an excess kept as account credit
PREPAYMENT_LINE = "Prepayment to account credit"


def prepayment_tax_rate(payment: SubscriptionPayment) -> Decimal:
    """The tax percent on money the payment's payer keeps as account credit: a prepayment of
    the buyer's taxed supplies. An upgrade's quote records it (`CREDIT_TAX_RATE_KEY`: the
    rate a renewal would charge, as the upgrade itself charges none); other quotes charge
    that rate, so it is the one they recorded (0 under reverse charge or in an untaxed
    country), else read from their amounts (a payment quoted before quotes recorded it; an
    upgrade quoted before it recorded its credit rate thus gets 0, as it did then)."""
    meta = payment_meta(payment)
    rate = recorded_tax_rate(meta, CREDIT_TAX_RATE_KEY)
    if rate is None:
        rate = recorded_tax_rate(meta)
    return effective_tax_rate(payment.amount, payment.tax) if rate is None else rate


def prepayment_line(excess: Overpaid | None, currency: str) -> InvoiceLine | None:
    """The invoice line of an excess booked as a taxed prepayment (`Overpaid.tax_rate`): its
    net value credited and the VAT on it, in the invoice's `currency` (the subscription's,
    as the credit is). None for no excess, one too small to credit, one recorded before
    prepayments were taxed, or one in another currency than the invoice's."""
    if excess is None or excess.tax_rate is None or not excess.credited:
        return None
    if excess.currency.upper() != currency.upper():
        return None
    return InvoiceLine(
        description=PREPAYMENT_LINE, net=excess.credited, tax_rate=excess.tax_rate, tax=excess.tax
    )


def kept_value_split(value: int, payment: SubscriptionPayment) -> tuple[int, int, Decimal]:
    """(net, VAT, rate percent) of `value`, a paid payment's own money (its tax excluded)
    kept whole as account credit because what it paid for was not given: an Upgrade not
    applied (its VM deleted, its quote outdated, no room on its host).

    Kept for later supplies, that money is a prepayment, as an excess is: an upgrade charges
    no tax, so its value bears the VAT of the buyer's taxed supplies (`prepayment_tax_rate`:
    the `credit_tax_rate` its quote recorded; 0 under reverse charge, in an untaxed country
    or for a quote from before it was recorded) and the credit is its net
    (`prepayment_split`: the credit with its VAT is never worth more than arrived). A
    payment that charged its VAT on top (`tax` on the row: any other kind, or an upgrade
    taxed before upgrades charged none) already declared it: all of `value` is net, at 0
    here (its invoice line keeps the row's own tax and rate)."""
    if payment.tax or payment.payment_type is not SubscriptionPaymentType.UPGRADE:
        return value, 0, Decimal(0)
    rate = prepayment_tax_rate(payment)
    net, tax = prepayment_split(value, rate)
    return net, tax, rate


def kept_payment_line(
    net: int, tax: int, rate: Decimal, payment: SubscriptionPayment
) -> InvoiceLine:
    """The invoice line of an Upgrade not applied, whose value became account credit: one
    `PREPAYMENT_LINE` in place of its "Upgrade: …" line, as nothing was supplied. `net` and
    `tax` are the payment row's, in the invoice's currency, and `rate` the one it charged:
    a row that charged tax keeps them; an untaxed one's net is split as its credit was
    (`kept_value_split`), so the line adds up to the row. Notes never take it back
    (`domain.credit_note.creditable_parts`): the money stays on the balance."""
    if not tax:
        net, tax, rate = kept_value_split(net, payment)
    return InvoiceLine(description=PREPAYMENT_LINE, net=net, tax_rate=rate, tax=tax)
