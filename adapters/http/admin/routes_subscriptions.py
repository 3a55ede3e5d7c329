"""Admin subscription routes (api.md §9.12): list by user, get, create, update; line items."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import (
    EXTERNAL_ID_LIMIT,
    ID,
    NAME_LIMIT,
    TEXT_LIMIT,
    TEXT_SCHEMA,
    add,
    body_str,
    query_uint,
    stored,
)
from adapters.http.admin.views import (
    line_items_json,
    one_line_item_json,
    subscription_json,
    subscriptions_json,
)
from adapters.http.bounds import ID_MIN, ID_SCHEMA, UINT_SCHEMA
from adapters.http.context import services
from adapters.http.envelope import data_response, page_response, parse_page, parse_time
from adapters.http.openapi import QueryParam, RouteTable
from adapters.http.vm_params import as_int, json_object, optional_bool, path_id, required_int
from app.admin.subscriptions import (
    LineItemPatch,
    SubscriptionDraft,
    SubscriptionPatch,
)
from app.billing.errors import NotFound, SubscriptionNotFound
from domain.enums import AdminAction, AdminResource, IntervalType
from domain.errors import DomainError, InvalidInput
from domain.intervals import MAX_ANY_INTERVAL_AMOUNT
from domain.limits import MAX_EXPIRY_AHEAD_MONTHS, MAX_PRICE
from domain.patch import UNSET

_SUBS = AdminResource.SUBSCRIPTIONS
_ITEMS = AdminResource.SUBSCRIPTION_LINE_ITEMS
#: the widest interval amount of any unit; the use case checks it against the unit given


def _required_bool(body: Mapping[str, Any], name: str) -> bool:
    value = optional_bool(body, name)
    if value is None:
        raise InvalidInput(f"missing field `{name}`")
    return value


def _required_str(body: Mapping[str, Any], name: str, limit: int) -> str:
    value = body_str(body, name, limit)
    if value is None:
        raise InvalidInput(f"missing field `{name}`")
    return value


def _time(value: Any, name: str) -> Any:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be an RFC 3339 timestamp")
    return parse_time(value)


def _interval(value: Any) -> IntervalType:
    if value is None:
        return IntervalType.MONTH
    if isinstance(value, str) and value.strip().upper() in IntervalType.__members__:
        return IntervalType[value.strip().upper()]
    raise InvalidInput("interval_type must be one of: day, month, year")


@require(_SUBS, AdminAction.VIEW)
async def list_subscriptions(request: web.Request, admin: Admin) -> web.StreamResponse:
    """Subscriptions of `user_id`, id descending (the port lists per user only)."""
    page = parse_page(request.query)
    user_id = query_uint(request.query, "user_id")
    if user_id is None:
        raise DomainError("user_id is required: subscriptions are listed per user")
    async with services(request).uow_factory() as uow:
        found = await uow.subscriptions.list_by_user(user_id, page.limit, page.offset)
        items = await subscriptions_json(uow, found.items)
    return page_response(items, found.total, page)


@require(_SUBS, AdminAction.VIEW)
async def get_subscription(request: web.Request, admin: Admin) -> web.StreamResponse:
    async with services(request).uow_factory() as uow:
        sub = await uow.subscriptions.get(path_id(request))
        if sub is None:
            raise SubscriptionNotFound("Subscription not found")
        return data_response(await subscription_json(uow, sub))


@require(_SUBS, AdminAction.CREATE)
async def create(request: web.Request, admin: Admin) -> web.StreamResponse:
    body = await json_object(request)
    expires = body.get("expires")
    amount = body.get("interval_amount")
    draft = SubscriptionDraft(
        user_id=required_int(body, "user_id", minimum=ID_MIN),
        company_id=required_int(body, "company_id", minimum=ID_MIN),
        name=_required_str(body, "name", NAME_LIMIT),
        is_active=_required_bool(body, "is_active"),
        currency=f.CURRENCY(body.get("currency"), "currency"),
        setup_fee=required_int(body, "setup_fee", maximum=MAX_PRICE),
        auto_renewal_enabled=_required_bool(body, "auto_renewal_enabled"),
        description=body_str(body, "description", TEXT_LIMIT, multiline=True),
        expires=None if expires is None else _time(expires, "expires"),
        interval_amount=1
        if amount is None
        else as_int(amount, "interval_amount", maximum=MAX_ANY_INTERVAL_AMOUNT),
        interval_type=_interval(body.get("interval_type")),
        external_id=body_str(body, "external_id", EXTERNAL_ID_LIMIT),
    )
    svc = services(request)
    sub = await svc.admin.create_subscription(draft, admin_id=admin.user.id)
    async with svc.uow_factory() as uow:
        return data_response(await subscription_json(uow, sub))


def _given(body: Mapping[str, Any], name: str, value: Any) -> Any:
    """Plain optional: absent or null → unchanged."""
    return UNSET if body.get(name) is None else value


def _nullable(body: Mapping[str, Any], name: str, value: Any) -> Any:
    """Nullable-patch: absent → unchanged, null → cleared."""
    if name not in body:
        return UNSET
    return None if body[name] is None else value


@require(_SUBS, AdminAction.UPDATE)
async def update(request: web.Request, admin: Admin) -> web.StreamResponse:
    body = await json_object(request)
    b = body
    patch = SubscriptionPatch(
        name=_given(b, "name", body_str(b, "name", NAME_LIMIT)),
        description=_given(
            b, "description", body_str(b, "description", TEXT_LIMIT, multiline=True)
        ),
        # null clears it; anything else ("", false, 0 included) must be a timestamp
        expires=_nullable(
            b, "expires", b.get("expires") is not None and _time(b["expires"], "expires")
        ),
        is_active=_given(b, "is_active", optional_bool(b, "is_active")),
        currency=_given(
            b, "currency", b.get("currency") is not None and f.CURRENCY(b["currency"], "currency")
        ),
        setup_fee=_given(
            b,
            "setup_fee",
            b.get("setup_fee") is not None
            and as_int(b["setup_fee"], "setup_fee", maximum=MAX_PRICE),
        ),
        auto_renewal_enabled=_given(
            b, "auto_renewal_enabled", optional_bool(b, "auto_renewal_enabled")
        ),
        external_id=_nullable(b, "external_id", body_str(b, "external_id", EXTERNAL_ID_LIMIT)),
    )
    svc = services(request)
    sub = await svc.admin.update_subscription(
        subscription_id=path_id(request), patch=patch, admin_id=admin.user.id
    )
    async with svc.uow_factory() as uow:
        return data_response(await subscription_json(uow, sub))


@require(_ITEMS, AdminAction.VIEW)
async def list_line_items(request: web.Request, admin: Admin) -> web.StreamResponse:
    sub_id = path_id(request, "subscription_id")
    async with services(request).uow_factory() as uow:
        sub = await uow.subscriptions.get(sub_id)
        if sub is None:
            raise SubscriptionNotFound("Subscription not found")
        return data_response(await line_items_json(uow, sub))


@require(_ITEMS, AdminAction.VIEW)
async def get_line_item(request: web.Request, admin: Admin) -> web.StreamResponse:
    missing = NotFound("Subscription line item not found")
    item = await stored(request, lambda uow: uow.line_items, missing)
    async with services(request).uow_factory() as uow:
        return data_response(await one_line_item_json(uow, item))


@require(_ITEMS, AdminAction.UPDATE)
async def patch_line_item(request: web.Request, admin: Admin) -> web.StreamResponse:
    b = await json_object(request)
    patch = LineItemPatch(
        name=_given(b, "name", body_str(b, "name", NAME_LIMIT)),
        description=_given(
            b, "description", body_str(b, "description", TEXT_LIMIT, multiline=True)
        ),
        amount=_given(
            b,
            "amount",
            b.get("amount") is not None and as_int(b["amount"], "amount", maximum=MAX_PRICE),
        ),
        setup_amount=_given(
            b,
            "setup_amount",
            b.get("setup_amount") is not None
            and as_int(b["setup_amount"], "setup_amount", maximum=MAX_PRICE),
        ),
        configuration=_given(
            b,
            "configuration",
            b.get("configuration") is not None
            and f.json_value(f.JSON_LIMIT)(b["configuration"], "configuration"),
        ),
    )
    svc = services(request)
    item = await svc.admin.update_line_item(
        line_item_id=path_id(request), patch=patch, admin_id=admin.user.id
    )
    async with svc.uow_factory() as uow:
        return data_response(await one_line_item_json(uow, item))


def add_admin_subscription_routes(table: RouteTable) -> None:
    create_body = {
        "type": "object",
        "required": [
            "user_id",
            "company_id",
            "name",
            "is_active",
            "currency",
            "setup_fee",
            "auto_renewal_enabled",
        ],
        "properties": {
            "user_id": ID_SCHEMA,
            "company_id": ID_SCHEMA,
            "name": f.text_schema(NAME_LIMIT),
            "description": TEXT_SCHEMA,
            "expires": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": f"from 1970 to {MAX_EXPIRY_AHEAD_MONTHS // 12} years from now",
            },
            "is_active": {"type": "boolean"},
            "currency": f.CURRENCY_SCHEMA,
            "interval_amount": {
                **UINT_SCHEMA,
                "minimum": 1,
                "maximum": MAX_ANY_INTERVAL_AMOUNT,
                "default": 1,
            },
            "interval_type": {"enum": ["day", "month", "year"], "default": "month"},
            "setup_fee": f.MONEY_SCHEMA,
            "auto_renewal_enabled": {"type": "boolean"},
            "external_id": f.text_schema(EXTERNAL_ID_LIMIT, nullable=True),
        },
    }
    user = QueryParam(
        "user_id",
        ID_SCHEMA,
        required=True,
        description="required here: storage lists subscriptions per user",
    )
    add(
        table,
        "GET",
        "/subscriptions",
        list_subscriptions,
        "A user's subscriptions, id desc",
        response=sch.SUBSCRIPTION,
        query=(user,),
        paginated=True,
    )
    add(
        table,
        "GET",
        f"/subscriptions/{ID}",
        get_subscription,
        "One subscription",
        response=sch.SUBSCRIPTION,
    )
    add(
        table,
        "POST",
        "/subscriptions",
        create,
        "Create a subscription (no line items)",
        request=create_body,
        response=sch.SUBSCRIPTION,
    )
    add(
        table,
        "PATCH",
        f"/subscriptions/{ID}",
        update,
        "Update a subscription",
        request=f.patch_of(create_body),
        response=sch.SUBSCRIPTION,
    )
    add(
        table,
        "GET",
        r"/subscriptions/{subscription_id:\d+}/line_items",
        list_line_items,
        "Line items of a subscription",
        response={"type": "array", "items": sch.LINE_ITEM},
    )
    add(
        table,
        "GET",
        f"/subscription_line_items/{ID}",
        get_line_item,
        "One line item",
        response=sch.LINE_ITEM,
    )
    add(
        table,
        "PATCH",
        f"/subscription_line_items/{ID}",
        patch_line_item,
        "Update a line item (subscription_type ignored)",
        request=f.patch_body(
            {
                "name": f.text_schema(NAME_LIMIT, nullable=True),
                "description": TEXT_SCHEMA,
                "amount": {**f.MONEY_SCHEMA, "type": ["integer", "null"]},
                "setup_amount": {**f.MONEY_SCHEMA, "type": ["integer", "null"]},
                "configuration": {},
            }
        ),
        response=sch.LINE_ITEM,
    )
