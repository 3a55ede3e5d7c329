"""Admin VM delete and refund routes (api.md §9.3): DELETE /vms/{id}, GET/POST /vms/{id}/refund."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import (
    DATE_LIMIT,
    ID,
    JOB_SCHEMA,
    TEXT_LIMIT,
    TEXT_SCHEMA,
    add,
    body_str,
)
from adapters.http.context import services
from adapters.http.envelope import data_response, format_time, parse_time
from adapters.http.openapi import QueryParam, RouteTable, Schema
from adapters.http.views_schema import DATETIME, STRING, U64, nullable, obj
from adapters.http.vm_params import optional_json_object, path_id
from app.admin.vm_removal import RefundAmount
from domain.enums import AdminAction, AdminResource, PaymentMethod
from domain.errors import InvalidInput

_VM = AdminResource.VIRTUAL_MACHINES
#: a BOLT11 invoice is a few hundred characters; this bounds what reaches the notice.
MAX_INVOICE_CHARS = 2048
_REFUND_METHODS = (PaymentMethod.LIGHTNING, PaymentMethod.REVOLUT, PaymentMethod.PAYPAL)
#: the refund's answer: JobResponse plus the reference's `job_dispatched` (always true)
REFUND_JOB: Schema = {
    "type": "object",
    "properties": {"job_dispatched": {"type": "boolean"}, "job_id": {"type": "string"}},
    "required": ["job_dispatched", "job_id"],
}
REFUND_INFO: Schema = obj(
    {
        "amount": U64,
        "currency": STRING,
        "rate": {"type": "number"},
        "rate_exact": STRING,
        "expires": nullable(DATETIME),
        "seconds_remaining": {"type": "integer"},
    }
)


@require(_VM, AdminAction.DELETE)
async def remove_vm(request: web.Request, admin: Admin) -> web.StreamResponse:
    """Queue DeleteVm; the body (`{reason?}`) is optional, unlike the reference's."""
    body = await optional_json_object(request)
    job_id = await services(request).admin.delete_vm(
        vm_id=path_id(request),
        admin_id=admin.user.id,
        reason=body_str(body, "reason", TEXT_LIMIT, multiline=True),
    )
    return data_response({"job_id": job_id})


def _refund_json(refund: RefundAmount) -> dict[str, Any]:
    return {
        "amount": refund.amount.amount,
        "currency": refund.amount.currency.value,
        "rate": float(refund.rate),
        "rate_exact": str(refund.rate),
        "expires": None if refund.expires is None else format_time(refund.expires),
        "seconds_remaining": refund.seconds_remaining,
    }


def _unix_time(seconds: int, error: str) -> datetime:
    """Unix seconds as aware UTC; `error` (400) outside what a datetime holds."""
    try:
        if abs(seconds) >= 10**12:
            raise ValueError(seconds)
        return datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidInput(error) from None


def _from_unix(raw: str | None) -> datetime | None:
    if raw is None or raw == "":
        return None
    if not raw.lstrip("-").isdigit() or len(raw) > 12:
        raise InvalidInput("Invalid from_date timestamp")
    return _unix_time(int(raw), "Invalid from_date timestamp")


def _refund_from(body: dict[str, Any]) -> datetime | None:
    """`refund_from_date`: unix seconds (a JSON integer, as the LNVPS admin UI sends it) or an
    RFC 3339 string; absent or null is None (now). Anything else is 400; the bound (never
    before now) is the use case's."""
    raw = body.get("refund_from_date")
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return _unix_time(raw, "Invalid refund_from_date timestamp")
    if isinstance(raw, str):
        text = body_str(body, "refund_from_date", DATE_LIMIT)
        return None if text is None else parse_time(text)
    raise InvalidInput("refund_from_date must be unix seconds or an RFC 3339 timestamp")


@require(_VM, AdminAction.UPDATE)
async def refund_quote(request: web.Request, admin: Admin) -> web.StreamResponse:
    raw = request.query.get("method", "lightning")
    try:
        method = PaymentMethod.parse(raw)
    except InvalidInput:
        raise InvalidInput("Invalid payment method") from None
    from_date = _from_unix(request.query.get("from_date"))
    svc = services(request)
    found = await svc.admin.refund_amount(
        vm_id=path_id(request), method=method, from_date=from_date
    )
    return data_response(_refund_json(found))


def _refund_method(body: dict[str, Any]) -> PaymentMethod:
    raw = body.get("payment_method")
    if raw is None:
        return PaymentMethod.LIGHTNING
    bad = InvalidInput("Invalid payment method. Must be 'lightning', 'revolut', or 'paypal'")
    if not isinstance(raw, str):
        raise bad
    try:
        method = PaymentMethod.parse(raw)
    except InvalidInput:
        raise bad from None
    if method not in _REFUND_METHODS:
        raise bad
    return method


def _invoice(body: dict[str, Any], method: PaymentMethod) -> str | None:
    invoice = body_str(body, "lightning_invoice", TEXT_LIMIT)
    invoice = None if invoice is None or not invoice.strip() else invoice.strip()
    if method is PaymentMethod.LIGHTNING and invoice is None:
        raise InvalidInput("Lightning invoice is required when payment method is 'lightning'")
    if method is not PaymentMethod.LIGHTNING and invoice is not None:
        raise InvalidInput(
            "Lightning invoice should only be provided when payment method is 'lightning'"
        )
    if invoice is not None and (
        len(invoice) > MAX_INVOICE_CHARS
        or not invoice.lower().startswith("ln")
        or not invoice.isalnum()
    ):
        raise InvalidInput("Invalid Lightning invoice")
    return invoice


@require(_VM, AdminAction.UPDATE, also=(AdminResource.PAYMENTS, AdminAction.UPDATE))
async def refund(request: web.Request, admin: Admin) -> web.StreamResponse:
    """Validate, record the refund once (the paid time cut to its start, 409 for time refunded
    already) and tell the admins to pay it (no money moves automatically: the reference's
    refund job was never implemented).

    Needs `payments::update` besides the reference's `virtual_machines::update`: the refund is
    money paid out (and a credit note on the invoices), and `virtual_machines::update` alone
    may extend a VM for free, so an admin who may only edit VMs could otherwise have any
    amount paid out."""
    body = await optional_json_object(request)
    method = _refund_method(body)
    invoice = _invoice(body, method)
    job_id = await services(request).admin.refund_by_hand(
        vm_id=path_id(request),
        method=method,
        from_date=_refund_from(body),
        lightning_invoice=invoice,
        admin_id=admin.user.id,
        reason=body_str(body, "reason", TEXT_LIMIT, multiline=True),
    )
    # the LNVPS admin UI closes its dialog on `job_dispatched` (the reference's answer)
    return data_response({"job_dispatched": True, "job_id": job_id})


def add_admin_vm_removal_routes(table: RouteTable) -> None:
    vm = f"/vms/{ID}"
    add(
        table,
        "DELETE",
        vm,
        remove_vm,
        "Queue DeleteVm (pending invoices end with it)",
        request={"type": "object", "properties": {"reason": TEXT_SCHEMA}},
        response=JOB_SCHEMA,
    )
    add(
        table,
        "GET",
        f"{vm}/refund",
        refund_quote,
        "Value of the unused paid time, converted for the method",
        response=REFUND_INFO,
        query=(
            QueryParam("method", description="lightning (default), revolut, paypal, stripe"),
            QueryParam(
                "from_date",
                {"type": "integer"},
                description="unix seconds, default now; never earlier than now (400)",
            ),
        ),
    )
    add(
        table,
        "POST",
        f"{vm}/refund",
        refund,
        "Refund the unused time from `refund_from_date` (default now, never earlier) by hand: "
        "the time ends then, the refund is recorded once (409 for time refunded already) and "
        "the admins are told to pay it (no automatic payout)",
        request={
            "type": "object",
            "properties": {
                "payment_method": {"type": "string", "enum": [m.api_name for m in _REFUND_METHODS]},
                "refund_from_date": {
                    "anyOf": [
                        {"type": "integer", "description": "unix seconds"},
                        {"type": "string", "format": "date-time"},
                    ],
                    "description": "default now; never earlier than now (400)",
                },
                "reason": TEXT_SCHEMA,
                "lightning_invoice": f.text_schema(MAX_INVOICE_CHARS, nullable=True),
            },
        },
        response=REFUND_JOB,
    )
