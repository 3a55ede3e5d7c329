"""What an issued invoice billed, by kind: the service, the processing fee, the prepayment."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from domain.invoice import FEE_LINE, Invoice
from domain.prepayment import PREPAYMENT_LINE
from domain.shortfall import SHORTFALL_LINE


@attrs.frozen(kw_only=True)
class InvoicedFigures:
    """An invoice's net and VAT split by what they are for, in its currency's smallest units.

    `prepayment_*`: its "Prepayment to account credit" lines, money the payer keeps as account
    credit (an overpayment's excess, or a payment that supplied nothing): received and taxed,
    but not yet earned by a supply. `processing_fee`: its untaxed fee line. `service_*`: the
    rest, what the service was billed (its lines, less any account credit applied or any
    shortfall waived). The three add up to the invoice's net and VAT, so a sum of them over
    invoices accounts for every unit invoiced."""

    currency: str
    service_net: int
    service_tax: int
    processing_fee: int
    prepayment_net: int
    prepayment_tax: int

    @property
    def net(self) -> int:
        return self.service_net + self.processing_fee + self.prepayment_net

    @property
    def tax(self) -> int:
        return self.service_tax + self.prepayment_tax

    @property
    def total(self) -> int:
        return self.net + self.tax


def invoiced_figures(invoice: Invoice) -> InvoicedFigures:
    """The invoice's figures by kind, read off its stored lines (a fee line bears no VAT; one
    that did would count in the service's, so the sums stay the invoice's own).

    The shortfall line of an invoice that bills nothing but a prepayment (a payment kept
    whole as account credit, completed by hand though less than its total arrived) takes
    off the prepayment, whose net then is the credit booked for what arrived: it billed no
    service to take it off."""
    lines = invoice.document.lines
    fee = sum(x.net for x in lines if x.description == FEE_LINE)
    billed = {x.description for x in lines} - {FEE_LINE, SHORTFALL_LINE}
    kinds = {PREPAYMENT_LINE, SHORTFALL_LINE} if billed == {PREPAYMENT_LINE} else {PREPAYMENT_LINE}
    prepaid = [x for x in lines if x.description in kinds]
    prepaid_net, prepaid_tax = sum(x.net for x in prepaid), sum(x.tax for x in prepaid)
    return InvoicedFigures(
        currency=invoice.currency,
        service_net=invoice.net - fee - prepaid_net,
        service_tax=invoice.tax - prepaid_tax,
        processing_fee=fee,
        prepayment_net=prepaid_net,
        prepayment_tax=prepaid_tax,
    )


def summed_by_currency(figures: Iterable[InvoicedFigures]) -> list[InvoicedFigures]:
    """The figures added up per currency, currencies in alphabetical order."""
    sums: dict[str, InvoicedFigures] = {}
    for f in figures:
        s = sums.get(f.currency)
        sums[f.currency] = (
            f
            if s is None
            else InvoicedFigures(
                currency=f.currency,
                service_net=s.service_net + f.service_net,
                service_tax=s.service_tax + f.service_tax,
                processing_fee=s.processing_fee + f.processing_fee,
                prepayment_net=s.prepayment_net + f.prepayment_net,
                prepayment_tax=s.prepayment_tax + f.prepayment_tax,
            )
        )
    return [sums[c] for c in sorted(sums)]
