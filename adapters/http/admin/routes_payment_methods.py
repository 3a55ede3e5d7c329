"""Admin payment-method config routes (api.md §9.11): list, get, create, update."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, NAME_LIMIT, add, body_str, page_of, stored
from adapters.http.admin.views import payment_method_json
from adapters.http.bounds import ID_MIN, ID_SCHEMA, UINT_SCHEMA
from adapters.http.context import services
from adapters.http.envelope import data_response, page_response, parse_page
from adapters.http.openapi import RouteTable
from adapters.http.vm_params import as_int, json_object, optional_bool, path_id, required_int
from app.admin.payment_methods import (
    ConfigDraft,
    ConfigNotFound,
    ConfigPatch,
)
from domain.enums import AdminAction, AdminResource
from domain.errors import InvalidInput
from domain.patch import UNSET, unset_if_none

_RES = AdminResource.PAYMENT_METHOD_CONFIG


def _rate(value: Any) -> Decimal | None:
    """A percent as a JSON number, kept exact from its decimal text (`2.9` is 2.9, not f32)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput("processing_fee_rate must be a number (percent)")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise InvalidInput("processing_fee_rate must be a finite number") from None


def _currencies(value: Any) -> tuple[str, ...]:
    """Supported currency codes, each once (the column holds them comma-joined)."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > len(f.CURRENCY_CODES):
        raise InvalidInput("supported_currencies must be a list of currency codes")
    return tuple(dict.fromkeys(f.CURRENCY(c, "supported_currencies") for c in value))


def _fee_currency(value: Any) -> str | None:
    """At most its column's 5 characters; the use case checks that it is a known currency."""
    parsed: str | None = None if value is None else f.text(5)(value, "processing_fee_currency")
    return parsed


def _optional(body: Mapping[str, Any], name: str, parse: Any) -> Any:
    """Nullable-patch: absent → UNSET, null → None, else the parsed value."""
    return (
        parse(body[name])
        if name in body and body[name] is not None
        else (None if name in body else UNSET)
    )


@require(_RES, AdminAction.VIEW)
async def list_methods(request: web.Request, admin: Admin) -> web.StreamResponse:
    page = parse_page(request.query)
    rows = await services(request).admin.list_payment_methods()
    return page_response([payment_method_json(r) for r in page_of(rows, page)], len(rows), page)


@require(_RES, AdminAction.VIEW)
async def get_method(request: web.Request, admin: Admin) -> web.StreamResponse:
    missing = ConfigNotFound("Payment method config not found")
    row = await stored(request, lambda uow: uow.payment_methods, missing)
    return data_response(payment_method_json(row))


@require(_RES, AdminAction.CREATE)
async def create_method(request: web.Request, admin: Admin) -> web.StreamResponse:
    body = await json_object(request)
    base = body.get("processing_fee_base")
    draft = ConfigDraft(
        company_id=required_int(body, "company_id", minimum=ID_MIN),
        name=body_str(body, "name", NAME_LIMIT) or "",
        config=body.get("config"),
        enabled=optional_bool(body, "enabled") is not False,
        processing_fee_rate=_rate(body.get("processing_fee_rate")),
        processing_fee_base=None if base is None else as_int(base, "processing_fee_base"),
        processing_fee_currency=_fee_currency(body.get("processing_fee_currency")),
        supported_currencies=_currencies(body.get("supported_currencies")),
    )
    svc = services(request)
    return data_response(payment_method_json(await svc.admin.create_payment_method(draft)))


@require(_RES, AdminAction.UPDATE)
async def update_method(request: web.Request, admin: Admin) -> web.StreamResponse:
    body = await json_object(request)
    patch = ConfigPatch(
        name=unset_if_none(body_str(body, "name", NAME_LIMIT)),
        enabled=unset_if_none(optional_bool(body, "enabled")),
        config=body["config"] if body.get("config") is not None else UNSET,
        processing_fee_rate=_optional(body, "processing_fee_rate", _rate),
        processing_fee_base=_optional(
            body, "processing_fee_base", lambda v: as_int(v, "processing_fee_base")
        ),
        processing_fee_currency=_optional(body, "processing_fee_currency", _fee_currency),
        supported_currencies=(
            _currencies(body["supported_currencies"])
            if body.get("supported_currencies") is not None
            else UNSET
        ),
    )
    svc = services(request)
    row = await svc.admin.update_payment_method(path_id(request), patch)
    return data_response(payment_method_json(row))


def add_admin_payment_method_routes(table: RouteTable) -> None:
    create_body = {
        "type": "object",
        "required": ["company_id", "name", "config"],
        "properties": {
            "company_id": ID_SCHEMA,
            "name": f.text_schema(NAME_LIMIT),
            "enabled": {"type": "boolean"},
            "config": {"type": "object"},
            "processing_fee_rate": {
                "type": ["number", "null"],
                "minimum": 0,
                "exclusiveMaximum": 100,
            },
            "processing_fee_base": {**UINT_SCHEMA, "type": ["integer", "null"]},
            "processing_fee_currency": {"type": ["string", "null"], "maxLength": 5},
            "supported_currencies": {
                "type": "array",
                "items": f.CURRENCY_SCHEMA,
                "maxItems": len(f.CURRENCY_CODES),
            },
        },
    }
    add(
        table,
        "GET",
        "/payment_methods",
        list_methods,
        "Payment-method configs (company, method, name); secrets as has_* flags",
        response=sch.PAYMENT_METHOD,
        paginated=True,
    )
    add(
        table,
        "GET",
        f"/payment_methods/{ID}",
        get_method,
        "One payment-method config",
        response=sch.PAYMENT_METHOD,
    )
    add(
        table,
        "POST",
        "/payment_methods",
        create_method,
        "Create a config (fee rate 0 ≤ r < 100 %, known fee currency)",
        request=create_body,
        response=sch.PAYMENT_METHOD,
    )
    add(
        table,
        "PATCH",
        f"/payment_methods/{ID}",
        update_method,
        "Update a config (partial provider config of the same type)",
        request=f.patch_of(create_body),
        response=sch.PAYMENT_METHOD,
    )
