"""Admin account-credit routes (ours): a user's balances and ledger, adjustments with a reason,
and a VM's unused time refunded to credit."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, TEXT_LIMIT, TEXT_SCHEMA, add, body_str
from adapters.http.context import services
from adapters.http.envelope import data_response, page_response, parse_page
from adapters.http.openapi import QueryParam, RouteTable, Schema
from adapters.http.views_credit import (
    CREDIT_BALANCES_SCHEMA,
    CREDIT_ENTRY_SCHEMA,
    VAT_FREE,
    balances_json,
    credit_entry_json,
)
from adapters.http.views_schema import CURRENCY, U64, obj
from adapters.http.vm_params import json_object, optional_json_object, path_id
from app.billing.credit_balance import MAX_PAGE, Booked
from domain.account_credit import MAX_ENTRY, MAX_NOTE, MAX_REFERENCE
from domain.enums import AdminAction, AdminResource
from domain.errors import InvalidInput
from domain.money import Currency

_USERS = AdminResource.USERS
_PAYMENTS = AdminResource.PAYMENTS
#: the balance's VAT-free part, as each balance of `GET /users/{id}/credit` shows it
BALANCE_VAT_FREE: Schema = {
    **VAT_FREE,
    "description": "the part of `balance` that is VAT-free account credit, as `vat_free` "
    "of the balance in GET /users/{id}/credit (an added key). Smallest units.",
}
BOOKED_SCHEMA: Schema = obj(
    {
        "entry": CREDIT_ENTRY_SCHEMA,
        "balance": U64,
        "vat_free": BALANCE_VAT_FREE,
        "replayed": {"type": "boolean"},
    }
)
ADJUST_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "currency": CURRENCY,
        "amount": {
            "type": "integer",
            "minimum": -MAX_ENTRY,
            "maximum": MAX_ENTRY,
            "description": "signed, smallest units; not 0",
        },
        "note": f.text_schema(MAX_NOTE),
        "reference": f.text_schema(MAX_REFERENCE, nullable=True),
    },
    "required": ["currency", "amount", "note"],
}


def _booked_json(booked: Booked) -> dict[str, Any]:
    return {
        "entry": credit_entry_json(booked.entry),
        "balance": booked.balance,
        "vat_free": booked.vat_free,
        "replayed": booked.replayed,
    }


@require(_USERS, AdminAction.VIEW)
async def user_balances(request: web.Request, admin: Admin) -> web.StreamResponse:
    found = await services(request).admin.balance_parts_of(path_id(request))
    return data_response(balances_json(found))


@require(_USERS, AdminAction.VIEW)
async def user_ledger(request: web.Request, admin: Admin) -> web.StreamResponse:
    page = parse_page(request.query, max_limit=MAX_PAGE)
    code = request.query.get("currency")
    found = await services(request).admin.ledger_page(
        path_id(request),
        limit=page.limit,
        offset=page.offset,
        currency=None if code is None else Currency.parse(code).value,
    )
    return page_response([credit_entry_json(e) for e in found.items], found.total, page)


def _amount(body: dict[str, Any]) -> int:
    value = body.get("amount")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("amount must be a whole number of smallest units")
    return value


@require(_USERS, AdminAction.UPDATE, also=(_PAYMENTS, AdminAction.UPDATE))
async def adjust(request: web.Request, admin: Admin) -> web.StreamResponse:
    """Credit is money (a renewal spends it as paid): `payments::update` besides the user's."""
    body = await json_object(request)
    currency = body.get("currency")
    if not isinstance(currency, str):
        raise InvalidInput("currency must be a currency code")
    note = body_str(body, "note", MAX_NOTE)
    if note is None:
        raise InvalidInput("missing field `note`: an adjustment needs a reason")
    svc = services(request)
    booked = await svc.admin.adjust_credit(
        admin_id=admin.user.id,
        user_id=path_id(request),
        currency=currency[:8],
        amount=_amount(body),
        note=note,
        reference=body_str(body, "reference", MAX_REFERENCE),
    )
    return data_response(_booked_json(booked))


@require(
    AdminResource.VIRTUAL_MACHINES,
    AdminAction.UPDATE,
    # credit is money, granted by `payments::update`; extending a VM alone
    # (`virtual_machines::update`) then refunding the added time would otherwise mint credit
    also=(_PAYMENTS, AdminAction.UPDATE),
)
async def refund_vm_to_credit(request: web.Request, admin: Admin) -> web.StreamResponse:
    body = await optional_json_object(request)
    svc = services(request)
    booked = await svc.admin.refund_to_credit(
        vm_id=path_id(request),
        admin_id=admin.user.id,
        reason=body_str(body, "reason", TEXT_LIMIT, multiline=True),
    )
    return data_response(_booked_json(booked))


def add_admin_credit_routes(table: RouteTable) -> None:
    add(
        table,
        "GET",
        f"/users/{ID}/credit",
        user_balances,
        "A user's credit balance per currency (non-zero ones)",
        response=CREDIT_BALANCES_SCHEMA,
    )
    add(
        table,
        "GET",
        f"/users/{ID}/credit/ledger",
        user_ledger,
        "A user's credit ledger, newest first",
        response=CREDIT_ENTRY_SCHEMA,
        query=(QueryParam("currency", CURRENCY),),
        paginated=True,
    )
    add(
        table,
        "POST",
        f"/users/{ID}/credit",
        adjust,
        "Adjust a user's credit with a reason; a repeated `reference` books nothing again "
        "(409 when it comes with another amount)",
        request=ADJUST_SCHEMA,
        response=BOOKED_SCHEMA,
    )
    add(
        table,
        "POST",
        f"/vms/{ID}/refund/credit",
        refund_vm_to_credit,
        "Refund the VM's unused paid time to its owner's credit, in the subscription's "
        "currency (503 when a re-priced part has no fresh rate), and end that time now",
        request={"type": "object", "properties": {"reason": TEXT_SCHEMA}},
        response=BOOKED_SCHEMA,
    )
