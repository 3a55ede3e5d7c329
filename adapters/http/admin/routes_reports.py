"""Admin revenue reports (api.md §9.16): payments and referral usage over a date window.

Money is as stored (smallest units); `rate` is also given as an exact decimal string
(`rate_exact`) and the base-currency value as exact integers, so no figure goes through float.
A payment's row leaves out what its invoice bills beyond it (a prepayment to account credit:
an overpaid excess); each line's `invoice` and the report's `invoiced` sums carry every unit
invoiced, the prepayment as its own figure. The credit notes issued in the window
(`credit_notes`, summed in `credited`) take back what invoices billed, so the window's
invoices less its notes are what the invoice export of the same days totals.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import attrs
from aiohttp import web

from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import add
from adapters.http.context import services
from adapters.http.envelope import data_response, same_named
from adapters.http.openapi import QueryParam, RouteTable, Schema
from adapters.http.views_schema import STRING, U64, nullable, obj
from app.admin.reports import NoteLine, ReferralLine, ReportLine
from domain.enums import AdminAction, AdminResource
from domain.errors import InvalidInput, UnknownCurrency
from domain.invoice_figures import InvoicedFigures, summed_by_currency
from domain.model import SubscriptionPayment
from domain.money import Currency

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NUMBER: Schema = {"type": "number"}
_TIME: Schema = {"type": "string", "format": "date-time"}
#: what `_rate` writes
_RATE: Schema = {"rate": _NUMBER, "rate_exact": STRING}
#: what an invoice billed, by kind (`InvoicedFigures`), in its currency's smallest units
_FIGURES: dict[str, Schema] = {
    "currency": STRING,
    "net": {"type": "integer"},
    "tax": {"type": "integer"},
    "total": {"type": "integer"},
    "service_net": {"type": "integer"},
    "service_tax": {"type": "integer"},
    "processing_fee": {"type": "integer"},
    "prepayment_net": {"type": "integer"},
    "prepayment_tax": {"type": "integer"},
}
INVOICED: Schema = obj({"number": STRING, **_FIGURES})
PAYMENT: Schema = obj(
    {
        "id": STRING,
        "vm_id": U64,
        "created": _TIME,
        "expires": _TIME,
        "amount": U64,
        "currency": STRING,
        "payment_method": STRING,
        "external_id": nullable(STRING),
        "is_paid": {"type": "boolean"},
        **_RATE,
        "time_value": U64,
        "tax": U64,
        "company_id": U64,
        "company_name": STRING,
        "company_base_currency": STRING,
        "base_currency_amount": nullable(U64),
        "base_currency_tax": nullable(U64),
        "user_id": U64,
        "host_id": U64,
        "host_name": STRING,
        "region_id": U64,
        "region_name": STRING,
        # ours: the payment's invoice by kind (null: paid before invoices were issued)
        "invoice": nullable(INVOICED),
    }
)


def _report_schema(key: str, line: Schema, **more: Schema) -> Schema:
    """A report over a window: the dates as asked, then its lines under `key`."""
    return obj(
        {"start_date": STRING, "end_date": STRING, key: {"type": "array", "items": line}, **more}
    )


#: a credit note issued in the window: its own figures, in its currency's smallest units
#: (`net`/`tax` null for an old note issued before notes stored them)
CREDIT_NOTE: Schema = obj(
    {
        "number": STRING,
        "invoice_number": STRING,
        "issued_at": _TIME,
        "currency": STRING,
        "amount": {"type": "integer"},
        "net": nullable({"type": "integer"}),
        "tax": nullable({"type": "integer"}),
        "reason": STRING,
    }
)
#: the notes' sums per currency (`net`/`tax` null when an old note's are unknown)
CREDITED: Schema = obj(
    {
        "currency": STRING,
        "net": nullable({"type": "integer"}),
        "tax": nullable({"type": "integer"}),
        "total": {"type": "integer"},
    }
)
REPORT = _report_schema(
    "payments",
    PAYMENT,
    invoiced={"type": "array", "items": obj(dict(_FIGURES))},
    credit_notes={"type": "array", "items": CREDIT_NOTE},
    credited={"type": "array", "items": CREDITED},
)
REFERRAL: Schema = obj(
    {
        "vm_id": U64,
        "ref_code": STRING,
        "created": _TIME,
        "amount": U64,
        "currency": STRING,
        **_RATE,
        "base_currency": STRING,
    }
)
REFERRALS = _report_schema("referrals", REFERRAL)


def _time(when: datetime) -> str:
    """RFC 3339 with the `+00:00` offset form (§9.16)."""
    return when.isoformat()


def _date(query: Any, name: str) -> tuple[str, date]:
    raw = query.get(name, "")
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        return raw, date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"Invalid {name} format. Use YYYY-MM-DD") from None


@attrs.frozen
class _Window:
    """A report's window: the dates as asked and parsed, and the company (0: all)."""

    start_raw: str
    start: date
    end_raw: str
    end: date
    company_id: int

    def report(self, key: str, lines: list[dict[str, Any]], **more: Any) -> web.StreamResponse:
        """The answer `_report_schema` documents."""
        return data_response(
            {"start_date": self.start_raw, "end_date": self.end_raw, key: lines, **more}
        )


def _window(query: Any) -> _Window:
    start_raw, start = _date(query, "start_date")
    end_raw, end = _date(query, "end_date")
    if start > end:  # the same day twice: a one-day report
        raise InvalidInput("start_date must be before end_date")
    company = query.get("company_id", "0") or "0"
    if not company.isdigit() or len(company) > 20:
        raise InvalidInput("company_id must be a non-negative integer")
    return _Window(start_raw, start, end_raw, end, int(company))


def _rate(payment: SubscriptionPayment) -> dict[str, Any]:
    """The payment's rate as a JSON number and as an exact decimal string."""
    return {"rate": float(payment.rate), "rate_exact": str(payment.rate)}


def _figures_json(figures: InvoicedFigures) -> dict[str, Any]:
    return {
        **same_named(figures, "currency", "net", "tax", "total", "service_net", "service_tax"),
        **same_named(figures, "processing_fee", "prepayment_net", "prepayment_tax"),
    }


def _invoice_json(line: ReportLine) -> dict[str, Any] | None:
    """The payment's invoice by kind; null for a payment paid before invoices were issued."""
    if line.invoiced is None or line.invoice_number is None:
        return None
    return {"number": line.invoice_number, **_figures_json(line.invoiced)}


def _payment_json(line: ReportLine) -> dict[str, Any]:
    p = line.payment
    return {
        "id": p.id.hex(),
        "vm_id": 0 if line.vm is None else line.vm.id,
        "created": _time(p.created),
        "expires": _time(p.expires),
        "amount": p.amount,
        "currency": p.currency,
        "payment_method": p.payment_method.api_name,
        "external_id": p.external_id,
        "is_paid": True,
        **_rate(p),
        "time_value": p.time_value or 0,
        "tax": p.tax,
        "company_id": line.company.id,
        "company_name": line.company.name,
        "company_base_currency": line.company.base_currency,
        "base_currency_amount": line.base_amount,
        "base_currency_tax": line.base_tax,
        "user_id": p.user_id,
        "host_id": 0 if line.vm is None else line.vm.host_id,
        **same_named(line, "host_name", "region_id", "region_name"),
        "invoice": _invoice_json(line),
    }


def _note_json(line: NoteLine) -> dict[str, Any]:
    note, parts = line.note, line.parts
    return {
        **same_named(note, "number"),
        "invoice_number": line.invoice.number,
        "issued_at": _time(note.issued_at),
        **same_named(note, "currency", "amount"),
        "net": None if parts is None else parts[0],
        "tax": None if parts is None else parts[1],
        "reason": note.reason,
    }


def _credited_json(notes: list[NoteLine]) -> list[dict[str, Any]]:
    """The notes' sums per currency, alphabetical; net and tax null once a note of the
    currency has none (an old note), the total always known."""
    sums: dict[str, dict[str, Any]] = {}
    for line in notes:
        cur = line.note.currency
        got = sums.setdefault(cur, {"currency": cur, "net": 0, "tax": 0, "total": 0})
        got["total"] += line.note.amount
        for key, value in zip(("net", "tax"), line.parts or (None, None), strict=True):
            got[key] = None if value is None or got[key] is None else got[key] + value
    return [sums[c] for c in sorted(sums)]


@require(AdminResource.ANALYTICS, AdminAction.VIEW)
async def time_series(request: web.Request, admin: Admin) -> web.StreamResponse:
    q = request.query
    window = _window(q)
    currency = q.get("currency")
    if currency is not None:
        try:
            currency = str(Currency.parse(currency).value)
        except UnknownCurrency:
            raise InvalidInput(f"Invalid currency: {currency}") from None
    lines = await services(request).admin.revenue(
        start=window.start, end=window.end, company_id=window.company_id, currency=currency
    )
    notes = await services(request).admin.report_credit_notes(
        start=window.start, end=window.end, company_id=window.company_id, currency=currency
    )
    invoiced = summed_by_currency(line.invoiced for line in lines if line.invoiced)
    return window.report(
        "payments",
        [_payment_json(line) for line in lines],
        invoiced=[_figures_json(f) for f in invoiced],
        credit_notes=[_note_json(note) for note in notes],
        credited=_credited_json(notes),
    )


def _referral_json(line: ReferralLine) -> dict[str, Any]:
    p = line.payment
    return {
        **same_named(line, "vm_id", "ref_code"),
        "created": _time(p.created),
        **same_named(p, "amount", "currency"),
        **_rate(p),
        "base_currency": line.base_currency,
    }


@require(AdminResource.ANALYTICS, AdminAction.VIEW)
async def referral_series(request: web.Request, admin: Admin) -> web.StreamResponse:
    q = request.query
    window = _window(q)
    lines = await services(request).admin.referral_usage(
        start=window.start,
        end=window.end,
        company_id=window.company_id,
        ref_code=q.get("ref_code") or None,
    )
    return window.report("referrals", [_referral_json(line) for line in lines])


def add_admin_report_routes(table: RouteTable) -> None:
    window = (
        QueryParam("start_date", description="YYYY-MM-DD, required"),
        QueryParam(
            "end_date", description="YYYY-MM-DD, required, not before start_date; counted whole"
        ),
        QueryParam("company_id", {"type": "integer", "minimum": 0}),
    )
    add(
        table,
        "GET",
        "/reports/time-series",
        time_series,
        "Paid payments of a company paid in the window (both dates whole days), in the order "
        "paid, each with its invoice's figures by kind (service, processing fee, prepayment "
        "to account credit), and their sums per invoice currency (`invoiced`); the credit "
        "notes the company issued in the window (`credit_notes`) and their sums per "
        "currency (`credited`): `invoiced` less `credited` is what the window's invoice "
        "export totals",
        response=REPORT,
        query=(*window, QueryParam("currency", description="only payments in this currency")),
    )
    add(
        table,
        "GET",
        "/reports/referral-usage/time-series",
        referral_series,
        "First paid payment of each referred VM in the window",
        response=REFERRALS,
        query=(*window, QueryParam("ref_code")),
    )
