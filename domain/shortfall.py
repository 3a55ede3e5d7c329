"""A short Lightning settlement an admin completed as paid: its invoice states what arrived."""

from __future__ import annotations

from decimal import Decimal

from domain.admin_completion import admin_completion_of
from domain.credit import payment_meta
from domain.invoice import InvoiceLine
from domain.model import SubscriptionPayment
from domain.overpayment import prepayment_split

#: the invoice line that takes off what the payer did not send (negative net and VAT)
SHORTFALL_LINE = "Shortfall not received, waived"


def short_received_msat(payment: SubscriptionPayment) -> int | None:
    """The msat a Lightning payment brought when an admin completed it though that was less
    than its total (`AdminCompletion.short_received_msat`); None for any other payment."""
    admin = admin_completion_of(payment_meta(payment))
    return short_of(payment, None if admin is None else admin.short_received_msat)


def short_of(payment: SubscriptionPayment, received: int | None) -> int | None:
    """`received`, the msat an admin counts as `payment`'s (`short_received_msat`), when it
    is a short settlement: a Lightning payment's, less than its total; else None."""
    if payment.currency.upper() != "BTC" or received is None:
        return None
    return received if received < payment.total else None


def shortfall_line(
    received: int, fee: int, lines_net: int, lines_tax: int, rate: Decimal
) -> InvoiceLine:
    """The line that brings an invoice down to what was received.

    `received` is the money that arrived, in the invoice's currency; `fee` the processing
    fee line (untaxed, kept whole: Lightning charges none); `lines_net`, `lines_tax` the
    other lines' (the service, any account credit applied) as billed at `rate`. What arrived
    for the service, `received - fee`, holds its VAT: split as a prepayment is
    (`prepayment_split`: net rounded down, the VAT the rest), the VAT never above what the
    lines billed. The line is the difference, so the invoice's lines add up to `received`
    exactly and its VAT is the VAT in the money received."""
    gross = received - fee
    if gross > 0:
        _, tax = prepayment_split(gross, rate)
        tax = min(tax, lines_tax)
    else:  # nothing arrived for the service: no VAT is due on it
        tax = 0
    return InvoiceLine(
        description=SHORTFALL_LINE,
        net=gross - tax - lines_net,
        tax_rate=rate,
        tax=tax - lines_tax,
    )


def shortfall_note(missing_msat: int) -> str:
    """The sentence an invoice prints below its totals for a shortfall."""
    return (
        f"The Lightning payment brought {missing_msat} msat less than the amount due; it was "
        "completed by hand as paid and the rest waived, so this invoice states what was "
        "received."
    )
