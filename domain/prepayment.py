"""Money a payer sent beyond an invoice, kept as account credit: a prepayment that bears VAT."""

from __future__ import annotations

from decimal import Decimal

from domain.credit import payment_meta
from domain.invoice import InvoiceLine, effective_tax_rate
from domain.model import SubscriptionPayment
from domain.overpayment import Overpaid
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
