"""The invoice lines of a payment kept whole as account credit, and the credit they state."""

from __future__ import annotations

from decimal import Decimal

from domain.credit import payment_meta
from domain.exchange import msat_to_fiat
from domain.invoice import InvoiceLine, effective_tax_rate
from domain.model import SubscriptionPayment
from domain.money import Currency
from domain.overpayment import excess_value
from domain.prepayment import kept_payment_line
from domain.shortfall import shortfall_line
from domain.tax import recorded_tax_rate


def charged_tax_rate(payment: SubscriptionPayment) -> Decimal:
    """The tax percent the payment's quote charged: as it recorded it, else read from its
    amounts as charged (msat for Lightning, before rounding to cents; exact when no credit
    was applied), for a payment from before quotes recorded it."""
    rate = recorded_tax_rate(payment_meta(payment))
    return effective_tax_rate(payment.amount, payment.tax) if rate is None else rate


def shown(amount: int, shown_rate: Decimal | None) -> int:
    """An amount of the payment row in the invoice's currency: msat converted at
    `shown_rate` (a Lightning payment invoiced in fiat), else as it is."""
    return amount if shown_rate is None else msat_to_fiat(amount, shown_rate)


def shown_parts(payment: SubscriptionPayment, shown_rate: Decimal | None) -> tuple[int, int, int]:
    """Net, tax and fee of the payment row in the invoice currency (`shown`): the total paid
    converted as one, tax and fee each converted and the net the rest, so that the lines add
    up to the conversion of what was paid (converting all three parts rounded each on its
    own)."""
    total, tax, fee = (
        shown(amount, shown_rate) for amount in (payment.total, payment.tax, payment.processing_fee)
    )
    return total - tax - fee, tax, fee


def _kept_value(msat: int, currency: str, shown_rate: Decimal | None) -> int | None:
    """`msat` of a Lightning payment kept as credit in the invoice's `currency`: exactly and
    rounded DOWN (`excess_value`), as its credit is; as they are without `shown_rate`."""
    if shown_rate is None:
        return msat
    return excess_value(msat, Currency.parse(currency), shown_rate)


def kept_net(
    payment: SubscriptionPayment, currency: str, shown_rate: Decimal | None, net: int
) -> int:
    """The net of a payment kept whole as account credit, in the invoice's `currency`: for a
    Lightning payment invoiced in fiat, its amount (msat, tax and fee excluded) converted at
    the quote's own rate exactly and rounded DOWN (`excess_value`), the very conversion its
    credit was booked at (`app.billing.credit_overpayment.credit_unrestorable`), so the
    prepayment line and the credit are the same figure (converted half up as part of the
    whole row, the line could be a unit more than was credited, and than arrived); else
    the row's own net, `net`."""
    if shown_rate is None:
        return net
    kept = _kept_value(payment.amount, currency, shown_rate)
    return net if kept is None else kept


def kept_lines(
    payment: SubscriptionPayment,
    currency: str,
    shown_rate: Decimal | None,
    short: int | None,
    parts: tuple[int, int, int],
) -> list[InvoiceLine]:
    """The lines of a payment kept whole as account credit, before its fee line, in the
    invoice's `currency` (`shown_rate`: the quote's BTC rate of it for a Lightning payment
    invoiced in fiat, else None; `parts`: its `shown_parts`): its prepayment line
    (`kept_payment_line`), and for a short settlement an admin completed as paid (`short`:
    the msat that arrived, `domain.shortfall.short_received_msat`) the `shortfall_line`
    that brings it down to what arrived, converted as the prepayment is (rounded DOWN), so
    the two lines' net is the credit worth what arrived, net of its VAT and of the fee
    (`kept_credit`)."""
    net, tax, fee = parts
    kept = kept_net(payment, currency, shown_rate, net)
    lines = [kept_payment_line(kept, tax, charged_tax_rate(payment), payment)]
    if short is not None:
        arrived = _kept_value(short, currency, shown_rate)
        billed_net, billed_tax = sum(x.net for x in lines), sum(x.tax for x in lines)
        rate = lines[0].tax_rate
        lines.append(shortfall_line(arrived or 0, fee, billed_net, billed_tax, rate))
    return lines


def kept_credit(
    payment: SubscriptionPayment, currency: str, shown_rate: Decimal | None, short: int | None
) -> int:
    """The account credit a payment kept whole as credit is worth, in `currency` (smallest
    units; `shown_rate` and `short` as for `kept_lines`): the net its invoice's `kept_lines`
    state, never below 0. For a short settlement it is what arrived, net of VAT and fee,
    rounded down, not the amount asked: the credit is never worth more than the invoice
    bills."""
    parts = shown_parts(payment, shown_rate)
    lines = kept_lines(payment, currency, shown_rate, short, parts)
    return max(0, sum(line.net for line in lines))
