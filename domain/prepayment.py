"""Money a payer sent beyond an invoice, kept as account credit: a prepayment that bears VAT."""

from __future__ import annotations

from decimal import Decimal

from domain.account_credit import charged_credit, vat_free_applied
from domain.credit import payment_meta
from domain.enums import SubscriptionPaymentType
from domain.invoice import InvoiceLine, effective_tax_rate
from domain.model import SubscriptionPayment
from domain.overpayment import Overpaid
from domain.tax import CREDIT_TAX_RATE_KEY, recorded_tax_rate

#: the invoice line of an excess kept as account credit
PREPAYMENT_LINE = "Prepayment to account credit"


def prepayment_tax_rate(payment: SubscriptionPayment) -> Decimal:
    """The tax percent on money the payment's payer keeps as account credit: a prepayment of
    the buyer's taxed supplies. An upgrade's quote records it (`CREDIT_TAX_RATE_KEY`: the
    rate a renewal would charge, as the upgrade itself charges none; an untaxed upgrade's
    excess does not use it, it is VAT-free credit: `kept_vat_free`); other quotes charge
    that rate, so it is the one they recorded (0 under reverse charge or in an untaxed
    country), else read from their amounts (a payment quoted before quotes recorded it)."""
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


def _charged_its_own_tax(payment: SubscriptionPayment) -> bool:
    """The payment's quote charged VAT on its row (every kind but an Upgrade, even at 0 %
    under reverse charge or in an untaxed country; an upgrade taxed before upgrades charged
    none): its own money was declared at that rate already."""
    return bool(payment.tax) or payment.payment_type is not SubscriptionPaymentType.UPGRADE


def kept_vat_free(payment: SubscriptionPayment) -> bool:
    """A paid payment's own money kept whole as account credit is VAT-free credit
    (`domain.account_credit.CreditParts`): an untaxed Upgrade's (`_charged_its_own_tax`),
    which bore no VAT, and so is what a Lightning payer sent beyond it (its excess). Its
    VAT is declared when the credit pays a taxed supply (`domain.vat_free_credit`), and on
    an upgrade it counts whole, as it was paid."""
    return not _charged_its_own_tax(payment)


def vat_free_refund_part(payment: SubscriptionPayment, given: int) -> int:
    """Of `given` (smallest units), what a refund to credit gives back of `payment`'s unused
    time (`app.admin.credit_refund_invoices`), the part that comes back as VAT-free credit.

    An untaxed Upgrade's money bore no VAT (`kept_vat_free`), nor did the VAT-free credit
    it spent, which counted whole: that share of it comes back VAT-free, as it would had
    the upgrade not been applied, and is the part of `given` its money and VAT-free credit
    carried of all it carried (`amount + vat_free_net` over `amount + charged credit`,
    floored); the ordinary credit it spent (net, its VAT declared before) comes back
    ordinary. Every other payment declared the VAT on its time (a renewal's own, or the
    VAT-free credit it spent, on its invoice), and no note takes it back: its share is
    ordinary net credit, never VAT-free, or the next taxed supply would declare it again.
    (Given back as ordinary credit, EUR 36.75 of upgrade money paid 36.75 of a renewal's
    net, 8.45 of VAT never declared.)"""
    if given <= 0 or not kept_vat_free(payment):
        return 0
    meta = payment_meta(payment)
    charged = charged_credit(meta)
    carried = payment.amount + charged
    if carried <= 0:
        return 0
    free = payment.amount + min(vat_free_applied(meta).net, charged)
    return given * free // carried


def kept_value_split(value: int, payment: SubscriptionPayment) -> tuple[int, int, Decimal]:
    """(net, VAT, rate percent) of `value`, a paid payment's own money (its tax excluded)
    kept whole as account credit because what it paid for was not given: an Upgrade not
    applied (its VM deleted, its quote outdated, no room on its host), or a Purchase or
    Renewal whose deleted VM (or lapsed order) cannot be provided again. All of it is
    credit, and no VAT is declared on it here: a payment that charged its VAT on top
    (`_charged_its_own_tax`: a Purchase or Renewal, or an upgrade taxed before upgrades
    charged none) declared it at the quote's rate already (its invoice line keeps the row's
    own net, VAT and rate), and an upgrade's money bore none: it is kept as VAT-free credit
    (`kept_vat_free`), whose VAT the supply it later pays declares. (It was once split as a
    taxed prepayment at the buyer's rate, the credit its net: re-quoting the same upgrade
    from it then asked that VAT again.) `payment` is kept for the callers' sake."""
    del payment
    return value, 0, Decimal(0)


def kept_payment_line(
    net: int, tax: int, rate: Decimal, payment: SubscriptionPayment
) -> InvoiceLine:
    """The invoice line of a payment that supplied nothing, its whole value become account
    credit (an Upgrade not applied, a Purchase or Renewal whose VM cannot be provided
    again): one `PREPAYMENT_LINE` in place of its "Upgrade: …", "Renewal: …" or
    "Purchase: …" line. `net` and `tax` are the payment row's, in the invoice's currency
    (a Lightning payment's net converted as its credit was, rounded down), and `rate` the
    one its quote charged: a row that charged its own tax keeps all three, its net being
    what was credited (`kept_value_split`); an untaxed upgrade's is its net whole, at 0 %,
    VAT-free credit (`kept_vat_free`), so the line's net is the credit either way. Notes
    never take it back (`domain.credit_note.creditable_parts`): the money stays on the
    balance."""
    if not _charged_its_own_tax(payment):
        net, tax, rate = kept_value_split(net, payment)
    return InvoiceLine(description=PREPAYMENT_LINE, net=net, tax_rate=rate, tax=tax)
