"""An invoice's figures by kind add up to its own net and VAT, whatever its lines."""

from __future__ import annotations

from decimal import Decimal

import attrs

from domain.invoice import FEE_LINE, Invoice, InvoiceLine
from domain.invoice_figures import InvoicedFigures, invoiced_figures, summed_by_currency
from domain.prepayment import PREPAYMENT_LINE
from domain.shortfall import SHORTFALL_LINE
from tests.unit.test_invoice_rules import NOW, _content, _payment

R23 = Decimal(23)


def _invoice(currency: str, *lines: InvoiceLine) -> Invoice:
    doc = attrs.evolve(_content(_payment()), currency=currency, lines=lines)
    return Invoice(
        id=1,
        company_id=1,
        series="2027",
        seq=1,
        number="2027-000001",
        payment_id=b"\x05" * 32,
        user_id=7,
        issued_at=NOW,
        currency=currency,
        net=doc.net,
        tax=doc.tax,
        total=doc.total,
        content=doc.to_json(),
    )


def test_every_kind_is_its_own_figure_and_they_add_up() -> None:
    """A renewal (1 000 + 230), a fee (50), a prepayment (100 + 23) and a shortfall waived
    (-200 - 46, part of what the service was billed): 1 157 net, 207 VAT."""
    invoice = _invoice(
        "EUR",
        InvoiceLine(description="Renewal: VPS", net=1000, tax_rate=R23, tax=230),
        InvoiceLine(description=SHORTFALL_LINE, net=-200, tax_rate=R23, tax=-46),
        InvoiceLine(description=FEE_LINE, net=50, tax_rate=Decimal(0), tax=0),
        InvoiceLine(description=PREPAYMENT_LINE, net=100, tax_rate=R23, tax=23),
    )
    figures = invoiced_figures(invoice)
    assert figures == InvoicedFigures(
        currency="EUR",
        service_net=800,
        service_tax=184,
        processing_fee=50,
        prepayment_net=100,
        prepayment_tax=23,
    )
    assert (figures.net, figures.tax, figures.total) == (invoice.net, invoice.tax, invoice.total)


def test_the_shortfall_of_an_invoice_kept_as_credit_takes_off_the_prepayment() -> None:
    """A payment kept whole as credit (132 + 30 asked) of which 81 arrived: its shortfall
    line (-67 - 14) comes off the prepayment, now the 65 credited, not off a service it
    never billed (which it left at -67 - 14)."""
    invoice = _invoice(
        "EUR",
        InvoiceLine(description=PREPAYMENT_LINE, net=132, tax_rate=R23, tax=30),
        InvoiceLine(description=SHORTFALL_LINE, net=-67, tax_rate=R23, tax=-14),
    )
    figures = invoiced_figures(invoice)
    assert (figures.service_net, figures.service_tax, figures.processing_fee) == (0, 0, 0)
    assert (figures.prepayment_net, figures.prepayment_tax) == (65, 16)
    assert (figures.net, figures.tax) == (invoice.net, invoice.tax)


def test_sums_are_kept_per_currency() -> None:
    eur = _invoice("EUR", InvoiceLine(description="x", net=100, tax_rate=R23, tax=23))
    usd = _invoice("USD", InvoiceLine(description=PREPAYMENT_LINE, net=9, tax_rate=R23, tax=2))
    sums = summed_by_currency(invoiced_figures(i) for i in (usd, eur, eur))
    assert [(s.currency, s.total, s.prepayment_net) for s in sums] == [
        ("EUR", 246, 0),
        ("USD", 11, 9),
    ]
