"""The PDF of an issued invoice, drawn with fpdf2 from the snapshot taken at issue."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from adapters.http.invoice_html import format_amount
from domain.invoice import REVERSE_CHARGE_TEXT, Invoice, InvoiceContent, Party

_LINE = 5.0
_COLUMNS = (
    ("Description", 80.0, "L"),
    ("Net", 28.0, "R"),
    ("Tax rate", 20.0, "R"),
    ("Tax", 26.0, "R"),
    ("Gross", 28.0, "R"),
)


def _latin1(text: str) -> str:
    """The core PDF fonts speak Latin-1: anything else prints as `?` instead of failing."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _day(when: datetime | None) -> str:
    return "-" if when is None else when.strftime("%Y-%m-%d")


class _Page:
    """A thin writer over one FPDF document: text lines, a party block, table rows."""

    def __init__(self) -> None:
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=15)
        self.pdf.add_page()
        self.pdf.set_title("Invoice")

    def font(self, size: float, bold: bool = False) -> None:
        self.pdf.set_font("Helvetica", "B" if bold else "", size)

    def line(self, text: str, width: float = 0, align: str = "L") -> None:
        self.pdf.cell(width, _LINE, _latin1(text), align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def wrapped(self, text: str) -> None:
        self.pdf.multi_cell(0, _LINE, _latin1(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def party(self, title: str, party: Party, x: float, extra: tuple[str, ...] = ()) -> float:
        """Print a party block at column `x` from the current top; return where it ended."""
        top = self.pdf.get_y()
        rows = [
            party.name or "-",
            *party.address,
            party.country or "",
            f"VAT/Tax ID: {party.tax_id}" if party.tax_id else "",
            *extra,
        ]
        self.pdf.set_xy(x, top)
        self.font(10, bold=True)
        self.pdf.cell(90, _LINE, _latin1(title), new_x=XPos.LEFT, new_y=YPos.NEXT)
        self.font(9)
        for row in (r for r in rows if r):
            self.pdf.multi_cell(90, _LINE, _latin1(row), new_x=XPos.LEFT, new_y=YPos.NEXT)
        end = self.pdf.get_y()
        self.pdf.set_y(top)
        return end

    def row(self, cells: tuple[str, ...], bold: bool = False) -> None:
        self.font(9, bold)
        for text, (_, width, align) in zip(cells, _COLUMNS, strict=True):
            self.pdf.cell(width, 6, _latin1(text), border="B", align=align)
        self.pdf.ln(6)


def _rate(rate: Decimal) -> str:
    return f"{rate.normalize():f} %"


def render_invoice_pdf(invoice: Invoice) -> bytes:
    """A one-page A4 invoice with every field an EU invoice needs, from the issue snapshot."""
    doc: InvoiceContent = invoice.document
    cur = doc.currency
    page = _Page()
    page.font(18, bold=True)
    page.line("Invoice")
    page.font(10)
    page.line(f"Invoice number: {invoice.number}")
    page.line(f"Date of issue: {_day(doc.issued_at)}")
    page.line(
        f"Date of supply: {_day(doc.supply_from)} to {_day(doc.supply_to)}"
        if doc.supply_from
        else f"Date of supply: {_day(doc.issued_at)}"
    )
    page.line(f"Payment: {doc.payment_id} ({doc.payment_method}), paid")
    page.pdf.ln(4)
    left = page.party(
        "Seller", doc.seller, page.pdf.l_margin, (doc.seller.email,) if doc.seller.email else ()
    )
    right = page.party("Bill to", doc.buyer, 110, (doc.buyer_npub[:32], doc.buyer_npub[32:]))
    page.pdf.set_y(max(left, right) + 6)
    page.row(tuple(name for name, _, _ in _COLUMNS), bold=True)
    for item in doc.lines:
        page.row(
            (
                item.description[:48],
                format_amount(item.net, cur),
                _rate(item.tax_rate),
                format_amount(item.tax, cur),
                format_amount(item.gross, cur),
            )
        )
    page.pdf.ln(3)
    page.font(10)
    totals = [("Net total", doc.net), ("Tax total", doc.tax), ("Total", doc.total)]
    if doc.credit_applied:
        totals += [("Credit applied", -doc.credit_applied), ("Amount charged", doc.charged)]
    for label, amount in totals:
        sign = "-" if amount < 0 else ""
        page.font(10, bold=label in ("Total", "Amount charged"))
        page.pdf.cell(130, _LINE, label, align="R")
        page.line(sign + format_amount(abs(amount), cur), width=52, align="R")
    page.pdf.ln(4)
    page.font(9)
    if doc.btc_msat is not None:
        paid = format_amount(doc.btc_msat, "BTC")
        rate = f", at 1 BTC = {cur} {doc.btc_rate:.2f}" if doc.btc_rate is not None else ""
        page.wrapped(f"Paid over Lightning: {paid}{rate}.")
    if doc.reverse_charge:
        page.font(9, bold=True)
        page.wrapped(REVERSE_CHARGE_TEXT)
    return bytes(page.pdf.output())
