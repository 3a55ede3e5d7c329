"""Admin invoices (ours, issue 13): list a date window, export it as CSV, read one with its
credit notes, and issue a credit note. Issued invoices have no edit route: a correction is a
credit note."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, time
from typing import Any

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin.auth import Admin, permission_of, require
from adapters.http.admin.common import BASE, ID, add, body_str, query_uint
from adapters.http.context import services
from adapters.http.envelope import data_response, format_time, page_response, parse_page
from adapters.http.openapi import QueryParam, RouteTable, Schema
from adapters.http.views_schema import DATETIME, STRING, U64, nullable, obj
from adapters.http.vm_params import json_object, path_id
from domain.account_credit import MAX_REFERENCE
from domain.enums import AdminAction, AdminResource
from domain.errors import InvalidInput
from domain.invoice import CreditNote, Invoice, stored_note_parts
from ports.storage import InvoiceWindow

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_SCHEMA: Schema = {"type": "string", "format": "date", "maxLength": 10}
#: the largest credit note amount accepted (fits the BIGINT UNSIGNED column many times over)
_MAX_AMOUNT = 2**53
_REASON_LIMIT = 255
INVOICE: Schema = obj(
    {
        "id": U64,
        "number": STRING,
        "company_id": U64,
        "payment_id": STRING,
        "user_id": U64,
        "issued_at": DATETIME,
        "currency": STRING,
        "net": U64,
        "tax": U64,
        "total": U64,
        "content": {"type": "object"},
    }
)
CREDIT_NOTE: Schema = obj(
    {
        "id": U64,
        "number": STRING,
        "invoice_id": U64,
        "issued_at": DATETIME,
        "currency": STRING,
        "amount": U64,
        "reason": STRING,
        # the VAT split fixed at issue; null on a note issued before notes stored it
        "net": nullable(U64),
        "tax": nullable(U64),
        # the issuing request's `reference`; null when it had none
        "reference": nullable(STRING),
    }
)
#: the answer to issuing a note: the note, and whether a request with its `reference` had
#: issued it already (nothing issued now)
ISSUED_NOTE: Schema = {
    **CREDIT_NOTE,
    "properties": {**CREDIT_NOTE["properties"], "replayed": {"type": "boolean"}},
    "required": [*CREDIT_NOTE["required"], "replayed"],
}
INVOICE_WITH_NOTES: Schema = obj(
    {
        "invoice": INVOICE,
        "credit_notes": {"type": "array", "items": CREDIT_NOTE},
    }
)
_WINDOW = (
    QueryParam(
        "start_date",
        _DATE_SCHEMA,
        required=True,
        description="first day (YYYY-MM-DD, UTC), included",
    ),
    QueryParam(
        "end_date", _DATE_SCHEMA, required=True, description="last day (YYYY-MM-DD, UTC), excluded"
    ),
    QueryParam(
        "company_id", {"type": "integer", "minimum": 0}, description="only this company's invoices"
    ),
)
CSV_COLUMNS = (
    "number",
    "issued_at",
    "company_id",
    "payment_id",
    "user_id",
    "buyer_name",
    "buyer_country",
    "buyer_tax_id",
    "currency",
    "net",
    "tax",
    "total",
    "credit_applied",
    "charged",
    "reverse_charge",
    "btc_msat",
    "btc_rate",
    # appended (clients read the columns above by position): `invoice` or `credit_note`, and
    # for a credit note the number of the invoice it corrects
    "document",
    "corrects",
    # 1: no VAT because the buyer is outside the EU (the document says so); 0 otherwise
    "outside_eu",
)
INVOICE_DOCUMENT, CREDIT_NOTE_DOCUMENT = "invoice", "credit_note"
_PAYMENTS = AdminResource.PAYMENTS


def _day(query: Any, name: str) -> datetime:
    raw = query.get(name, "")
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        return datetime.combine(date.fromisoformat(raw), time(), tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"Invalid {name} format. Use YYYY-MM-DD") from None


def _window(query: Any) -> InvoiceWindow:
    since, until = _day(query, "start_date"), _day(query, "end_date")
    if not since < until:
        raise InvalidInput("start_date must be before end_date")
    return InvoiceWindow(since, until, query_uint(query, "company_id"))


def invoice_json(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "number": invoice.number,
        "company_id": invoice.company_id,
        "payment_id": invoice.payment_id.hex(),
        "user_id": invoice.user_id,
        "issued_at": format_time(invoice.issued_at),
        "currency": invoice.currency,
        "net": invoice.net,
        "tax": invoice.tax,
        "total": invoice.total,
        "content": invoice.content,
    }


def note_json(note: CreditNote, invoice: Invoice | None = None) -> dict[str, Any]:
    """A note's `net` and `tax` as issued; for an old note, as far as its invoice (when
    given) fixes them (`stored_note_parts`), else null."""
    parts = stored_note_parts(note, invoice)
    return {
        "id": note.id,
        "number": note.number,
        "invoice_id": note.invoice_id,
        "issued_at": format_time(note.issued_at),
        "currency": note.currency,
        "amount": note.amount,
        "reason": note.reason,
        "net": None if parts is None else parts[0],
        "tax": None if parts is None else parts[1],
        "reference": note.reference,
    }


def csv_row(invoice: Invoice) -> list[str]:
    """One export line; money as integers in minor units, as everywhere in the API."""
    doc = invoice.document
    values: list[object] = [
        invoice.number,
        format_time(invoice.issued_at),
        invoice.company_id,
        invoice.payment_id.hex(),
        invoice.user_id,
        doc.buyer.name,
        doc.buyer.country or "",
        doc.buyer.tax_id or "",
        invoice.currency,
        invoice.net,
        invoice.tax,
        invoice.total,
        doc.credit_applied,
        doc.charged,
        int(doc.reverse_charge),
        "" if doc.btc_msat is None else doc.btc_msat,
        "" if doc.btc_rate is None else doc.btc_rate,
        INVOICE_DOCUMENT,
        "",
        int(doc.outside_eu),
    ]
    return [_cell(v) for v in values]


def note_csv_row(note: CreditNote, invoice: Invoice) -> list[str]:
    """A credit note's export line: its own number and time, the corrected invoice's payment
    and buyer, its amounts negative (the window's totals sum to what stays earned), and the
    invoice it corrects. Net and tax are the note's own (`stored_note_parts`), empty for an
    old note that has none; the columns of the invoice's payment (credit, charge, BTC) too."""
    doc = invoice.document
    parts = stored_note_parts(note, invoice)
    net, tax = ("", "") if parts is None else (-parts[0], -parts[1])
    values: list[object] = [
        note.number,
        format_time(note.issued_at),
        note.company_id,
        invoice.payment_id.hex(),
        invoice.user_id,
        doc.buyer.name,
        doc.buyer.country or "",
        doc.buyer.tax_id or "",
        note.currency,
        net,
        tax,
        -note.amount,
        "",
        "",
        int(doc.reverse_charge),
        "",
        "",
        CREDIT_NOTE_DOCUMENT,
        invoice.number,
        int(doc.outside_eu),
    ]
    return [_cell(v) for v in values]


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula (=, +, -, @ lead a formula); an
    integer, negative too, is only a number and stays one."""
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@require(_PAYMENTS, AdminAction.VIEW)
async def list_window(request: web.Request, admin: Admin) -> web.StreamResponse:
    window = _window(request.query)
    page = parse_page(request.query)
    found = await services(request).admin.list_invoices(window, page.limit, page.offset)
    return page_response([invoice_json(i) for i in found.items], found.total, page)


@require(_PAYMENTS, AdminAction.VIEW)
async def export_csv(request: web.Request, admin: Admin) -> web.StreamResponse:
    window = _window(request.query)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    reads = services(request).admin
    async for invoice in reads.every_invoice(window):
        writer.writerow(csv_row(invoice))
    async for note, corrected in reads.every_credit_note(window):
        writer.writerow(note_csv_row(note, corrected))
    name = f"invoices-{window.since:%Y-%m-%d}-{window.until:%Y-%m-%d}.csv"
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@require(_PAYMENTS, AdminAction.VIEW)
async def get_invoice(request: web.Request, admin: Admin) -> web.StreamResponse:
    invoice, notes = await services(request).admin.invoice_with_notes(path_id(request))
    return data_response(
        {
            "invoice": invoice_json(invoice),
            "credit_notes": [note_json(n, invoice) for n in notes],
        }
    )


@require(_PAYMENTS, AdminAction.CREATE)
async def create_credit_note(request: web.Request, admin: Admin) -> web.StreamResponse:
    """`amount` (gross, minor units of the invoice's currency), a `reason` and optionally a
    `reference`: a repeat with it issues nothing and answers the note again (`replayed`)."""
    body = await json_object(request)
    amount = f.uint(_MAX_AMOUNT, minimum=1)(body.get("amount"), "amount")
    reason = body_str(body, "reason", _REASON_LIMIT)
    if not reason or not reason.strip():
        raise InvalidInput("reason is required")
    svc = services(request)
    issued = await svc.admin.issue_credit_note(
        invoice_id=path_id(request),
        amount=amount,
        reason=reason,
        admin_id=admin.user.id,
        reference=body_str(body, "reference", MAX_REFERENCE),
    )
    return data_response({**note_json(issued.note), "replayed": issued.replayed})


def add_admin_invoice_routes(table: RouteTable) -> None:
    add(
        table,
        "GET",
        "/invoices",
        list_window,
        "Invoices issued in a date window, oldest first",
        response=INVOICE,
        query=_WINDOW,
        paginated=True,
    )
    table.add(
        "GET",
        BASE + "/invoices/export",
        export_csv,
        summary=(
            "The window's invoices, then its credit notes (negative amounts, `document` "
            "`credit_note`, `corrects` the invoice number), as CSV "
            f"(needs `{permission_of(export_csv)}`)"
        ),
        query=_WINDOW,
        response={"type": "string"},
        enveloped=False,
        content_type="text/csv",
        tags=("admin",),
    )
    add(
        table,
        "GET",
        f"/invoices/{ID}",
        get_invoice,
        "One invoice with its credit notes",
        response=INVOICE_WITH_NOTES,
    )
    add(
        table,
        "POST",
        f"/invoices/{ID}/credit_notes",
        create_credit_note,
        "Issue a credit note against an invoice (the invoice itself never changes); a "
        "repeated `reference` issues nothing and answers the note it issued (`replayed`; 409 "
        "when it comes with another amount or reason)",
        request={
            "type": "object",
            "required": ["amount", "reason"],
            "properties": {
                "amount": {"type": "integer", "minimum": 1, "maximum": _MAX_AMOUNT},
                "reason": f.text_schema(_REASON_LIMIT),
                "reference": f.text_schema(MAX_REFERENCE, nullable=True),
            },
        },
        response=ISSUED_NOTE,
    )
