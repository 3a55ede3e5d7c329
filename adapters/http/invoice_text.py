"""What both renderings of an issued invoice (HTML page, PDF) print below its lines."""

from __future__ import annotations

from adapters.http.invoice_html import format_amount
from domain.invoice import InvoiceContent
from domain.overpayment import invoice_note
from domain.shortfall import shortfall_note


def totals(doc: InvoiceContent) -> list[tuple[str, int]]:
    """Net, tax and total; on an older document with account credit applied below its lines
    (not as a line of its own), the credit and what was charged."""
    rows = [("Net total", doc.net), ("Tax total", doc.tax), ("Total", doc.total)]
    if doc.credit_applied and not doc.credit_line:
        rows += [("Credit applied", -doc.credit_applied), ("Amount charged", doc.charged)]
    return rows


def payment_notes(doc: InvoiceContent) -> list[str]:
    """What was paid over Lightning and at which rate, where an overpayment went, and what a
    short payment lacked (the reverse-charge wording is each rendering's own: the PDF sets
    it in bold)."""
    out = []
    if doc.btc_msat is not None:
        paid = format_amount(doc.btc_msat, "BTC")
        rate = f", at 1 BTC = {doc.currency} {doc.btc_rate:.2f}" if doc.btc_rate is not None else ""
        out.append(f"Paid over Lightning: {paid}{rate}.")
    if doc.overpaid is not None:
        credited = format_amount(doc.overpaid.credited, doc.overpaid.currency)
        out.append(invoice_note(doc.overpaid, credited))
    if doc.short_msat is not None:
        out.append(shortfall_note(doc.short_msat))
    return out
