"""The HTML page of an issued invoice, drawn from its stored document alone: what the number
was issued for never changes with a later edit of the company, the account or the payment."""

from __future__ import annotations

from datetime import datetime
from html import escape

from adapters.http.invoice_html import PAGE_STYLE, address_block, format_amount, format_duration
from adapters.http.invoice_text import payment_notes, totals
from domain.invoice import (
    OUTSIDE_EU_TEXT,
    REVERSE_CHARGE_TEXT,
    InvoiceContent,
    InvoiceLine,
    Party,
)
from domain.invoice import Invoice as IssuedInvoice


def _party(party: Party) -> str:
    tax_id = f"Tax ID: {party.tax_id}" if party.tax_id else None
    return address_block(party.name, *party.address, party.country, tax_id, party.email)


def _period(doc: InvoiceContent) -> str:
    if doc.supply_from is None or doc.supply_to is None:
        return "-"
    return format_duration(int((doc.supply_to - doc.supply_from).total_seconds()))


def _row(line: InvoiceLine, cur: str, period: str, details: tuple[str, ...]) -> str:
    described = escape(line.description) + "".join(
        f"<div class='detail'>{escape(d)}</div>" for d in details
    )
    cells = (
        described,
        escape(period),
        escape(format_amount(line.net, cur)),
        escape(f"{line.tax_rate.normalize():f} %"),
        escape(format_amount(line.tax, cur)),
        escape(format_amount(line.gross, cur)),
    )
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _notes(doc: InvoiceContent) -> list[str]:
    out = []
    if doc.supply_from is not None and doc.supply_to is not None:
        out.append(f"Date of supply: {doc.supply_from:%Y-%m-%d} to {doc.supply_to:%Y-%m-%d}")
    out += payment_notes(doc)
    if doc.reverse_charge:
        out.append(REVERSE_CHARGE_TEXT)
    if doc.outside_eu:
        out.append(OUTSIDE_EU_TEXT)
    return out


def render_issued_invoice(
    issued: IssuedInvoice, paid_at: datetime | None, details: tuple[str, ...] = ()
) -> str:
    """A complete HTML page of `issued` (every stored string escaped); `details` (what an
    upgrade bought) go under its first line, `paid_at` into the status."""
    doc, cur = issued.document, issued.document.currency
    period = _period(doc)
    rows = "".join(
        _row(line, cur, period if i == 0 else "-", details if i == 0 else ())
        for i, line in enumerate(doc.lines)
    )
    total_rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{escape(format_amount(value, cur))}</td></tr>"
        for name, value in totals(doc)
    )
    status = f"PAID on {paid_at:%Y-%m-%d %H:%M} UTC" if paid_at else "PAID"
    notes = "".join(f"<p class='note'>{escape(note)}</p>" for note in _notes(doc))
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Invoice {escape(issued.number)}</title><style>{PAGE_STYLE}</style></head>"
        "<body><h1>Invoice</h1>"
        f"<div>Invoice number: <code>{escape(issued.number)}</code></div>"
        f"<div>Payment: <code>{escape(doc.payment_id)}</code></div>"
        f"<div>Date: {escape(f'{doc.issued_at:%Y-%m-%d}')}</div>"
        f"<div>Payment method: {escape(doc.payment_method)}</div>"
        f"<div class='status'>Status: {escape(status)}</div>"
        "<div class='parties'>"
        f"<div class='seller'><h2>Seller</h2>{_party(doc.seller)}</div>"
        f"<div class='buyer'><h2>Bill to</h2>{_party(doc.buyer)}"
        f"<div class='npub'>{escape(doc.buyer_npub)}</div></div></div>"
        "<table><thead><tr><th>Description</th><th>Period</th><th>Net</th><th>Tax rate</th>"
        f"<th>Tax</th><th>Total</th></tr></thead><tbody>{rows}</tbody></table>"
        f"<table class='totals'><tbody>{total_rows}</tbody></table>{notes}</body></html>"
    )
