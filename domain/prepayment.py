"""Money a payer sent beyond an invoice, kept as account credit: a prepayment that bears VAT."""

from __future__ import annotations

from decimal import Decimal

from domain.credit import payment_meta
from domain.invoice import InvoiceLine, effective_tax_rate
from domain.model import SubscriptionPayment
from domain.overpayment import Overpaid
from domain.tax import recorded_tax_rate

#: the invoice line of an excess kept as account credit
PREPAYMENT_LINE = "Prepayment to account credit"


def quoted_tax_rate(payment: SubscriptionPayment) -> Decimal:
    """The tax percent the payment's quote charged, as its invoice prints it: the one the
    quote recorded (0 under reverse charge or in an untaxed country), else read from its
    amounts (a payment quoted before quotes recorded it)."""
    rate = recorded_tax_rate(payment_meta(payment))
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
