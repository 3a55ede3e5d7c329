"""Subscription routes (api.md §6.9): list, create, get, payments, IP ranges given, renew."""

from __future__ import annotations

import hashlib
from functools import partial

from aiohttp import web

from adapters.http.auth import authenticated, authenticated_read, use_event_once
from adapters.http.bounds import ID_MIN, query_int
from adapters.http.client_limit import order_rate_limited
from adapters.http.context import services
from adapters.http.envelope import data_response, page_response, parse_page, read_json
from adapters.http.openapi import QueryParam, RouteTable
from adapters.http.views_account import (
    IP_RANGE_SCHEMA,
    NEW_SUBSCRIPTION_SCHEMA,
    SUBSCRIPTION_PAYMENT_SCHEMA,
    SUBSCRIPTION_SCHEMA,
    ip_range_json,
    subscription_json,
    subscription_payment_json,
)
from adapters.http.views_input import (
    IDEMPOTENCY_PARAM,
    Body,
    add_id_route,
    boolean,
    idempotency_key,
    json_object,
    path_id,
    payment_method,
    required_integer,
    required_text,
    text,
)
from app.billing.ip_purchase import (
    IpRangeItem,
    NewSubscription,
    OtherItem,
)
from app.queries.subscriptions import (
    SubscriptionView,
    get_subscription,
    list_subscription_payments,
    list_subscription_ranges,
    list_subscriptions,
)
from domain.enums import PaymentMethod, SubscriptionType
from domain.errors import InvalidInput
from domain.intervals import MAX_INTERVALS
from domain.model import User
from domain.text_rules import HOST_NAME_MAX, is_host_name
from ports.storage import UnitOfWork

U32_MAX = 2**32 - 1
_CURRENCY_LIMIT = 8


def _line_item(value: object) -> IpRangeItem | OtherItem:
    item = json_object(value)
    kind = required_text(item, "type")
    if kind == "ip_range":
        return IpRangeItem(
            ip_space_pricing_id=required_integer(item, "ip_space_pricing_id", minimum=ID_MIN)
        )
    if kind == "asn_sponsoring":
        required_integer(item, "asn", maximum=U32_MAX)
        return OtherItem(kind=SubscriptionType.ASN_SPONSORING)
    if kind == "dns_hosting":
        if not is_host_name(required_text(item, "domain", limit=HOST_NAME_MAX)):
            raise InvalidInput("`domain` must be a DNS name")
        return OtherItem(kind=SubscriptionType.DNS_HOSTING)
    raise InvalidInput(f"unknown line item type `{kind}`")


def _new_subscription(body: Body) -> NewSubscription:
    items = body.get("line_items")
    if not isinstance(items, list):
        raise InvalidInput("`line_items` must be an array")
    return NewSubscription(
        name=text(body, "name", required=False),
        description=text(body, "description", required=False),
        currency=text(body, "currency", required=False, limit=_CURRENCY_LIMIT),
        auto_renewal_enabled=boolean(body, "auto_renewal_enabled", required=False),
        line_items=tuple(_line_item(i) for i in items),
    )


def _intervals(request: web.Request) -> int:
    """`?intervals=` (an extension; default 1); the renewal checks 1..120 (D6)."""
    return query_int(request.query, "intervals", 1, minimum=1, maximum=MAX_INTERVALS)


@authenticated_read
async def get_subscriptions(
    request: web.Request, user: User, uow: UnitOfWork
) -> web.StreamResponse:
    page = parse_page(request.query)
    found = await list_subscriptions(uow, user.id, page.limit, page.offset)
    return page_response([subscription_json(v) for v in found.items], found.total, page)


@order_rate_limited
@authenticated
async def post_subscription(request: web.Request, user: User) -> web.StreamResponse:
    """Under the order limit per client address (D25), the user's cap of never-paid ones and
    the addresses never-paid orders may hold (per user and per IP space)."""
    svc = services(request)
    new = _new_subscription(json_object(await read_json(request)))
    sub, items = await svc.account.create_subscription(
        user.id,
        new,
        max_unpaid=svc.max_unpaid_subscriptions,
        unpaid_ip=svc.unpaid_ip_room,
        bitcoin_payable=not svc.rails.lightning_off,
    )
    return data_response(subscription_json(SubscriptionView(sub, items)))


@authenticated_read
async def get_subscription_by_id(
    request: web.Request, user: User, uow: UnitOfWork
) -> web.StreamResponse:
    view = await get_subscription(uow, path_id(request), user.id)
    return data_response(subscription_json(view))


@authenticated_read
async def get_subscription_payments(
    request: web.Request, user: User, uow: UnitOfWork
) -> web.StreamResponse:
    sub_id, page = path_id(request), parse_page(request.query)
    found = await list_subscription_payments(uow, sub_id, user.id, page.limit, page.offset)
    return page_response([subscription_payment_json(p) for p in found.items], found.total, page)


@authenticated_read
async def get_subscription_ip_ranges(
    request: web.Request, user: User, uow: UnitOfWork
) -> web.StreamResponse:
    """The IP ranges given to the subscription (the reference documented the route but did
    not serve it): each paid IP-range line item's block, ended ones too."""
    sub_id, page = path_id(request), parse_page(request.query)
    found = await list_subscription_ranges(uow, sub_id, user.id, page.limit, page.offset)
    return page_response([ip_range_json(r) for r in found.items], found.total, page)


@authenticated
async def renew_subscription(request: web.Request, user: User) -> web.StreamResponse:
    """A payment for the subscription (Purchase first, then Renewal); a pending twin is reused.

    POST with an `Idempotency-Key` header replays the first answer for the same key and
    request (D11); the same key with another request is a 409.
    """
    svc = services(request)
    sub_id, method, count = path_id(request), payment_method(request.query), _intervals(request)
    key = idempotency_key(request)
    if request.method == "POST" and key is not None:
        body = await request.read()
        digest = hashlib.sha256(request.query_string.encode() + b"\n" + body).digest()
        payment = await svc.billing.renew_idempotent(
            user_id=user.id,
            idempotency_key=key,
            request_body_hash=digest,
            subscription_id=sub_id,
            method=method,
            intervals=count,
        )
    else:
        # a GET's event may be replayed within its window: not when the quote spends credit
        spending_once = partial(use_event_once, request) if request.method == "GET" else None
        payment = await svc.billing.renew(
            user_id=user.id,
            subscription_id=sub_id,
            method=method,
            intervals=count,
            before_credit=spending_once,
        )
    return data_response(subscription_payment_json(payment))


def add_subscription_routes(table: RouteTable) -> None:
    """Register the subscription routes (static paths first, numeric ids only)."""
    tags = ("subscriptions",)
    renew_query = [
        QueryParam(
            "method",
            {"type": "string", "enum": PaymentMethod.wire_names()},
            description="default lightning; unknown values mean lightning",
        ),
        QueryParam(
            "intervals",
            {"type": "integer", "minimum": 1, "maximum": MAX_INTERVALS},
            description="intervals to pay for (extension; default 1)",
        ),
    ]
    table.add(
        "GET",
        "/api/v1/subscriptions",
        get_subscriptions,
        summary="The caller's subscriptions, newest first",
        response=SUBSCRIPTION_SCHEMA,
        paginated=True,
        tags=tags,
    )
    table.add(
        "POST",
        "/api/v1/subscriptions",
        post_subscription,
        summary="Create a subscription (IP ranges)",
        request=NEW_SUBSCRIPTION_SCHEMA,
        response=SUBSCRIPTION_SCHEMA,
        tags=tags,
    )
    add_id_route(
        table,
        "GET",
        r"/api/v1/subscriptions/{id:\d+}",
        get_subscription_by_id,
        summary="One of the caller's subscriptions",
        response=SUBSCRIPTION_SCHEMA,
        tags=tags,
    )
    add_id_route(
        table,
        "GET",
        r"/api/v1/subscriptions/{id:\d+}/payments",
        get_subscription_payments,
        summary="Payments of a subscription, newest first",
        response=SUBSCRIPTION_PAYMENT_SCHEMA,
        paginated=True,
        tags=tags,
    )
    add_id_route(
        table,
        "GET",
        r"/api/v1/subscriptions/{id:\d+}/ip_ranges",
        get_subscription_ip_ranges,
        summary="IP ranges given to a subscription, newest first",
        response=IP_RANGE_SCHEMA,
        paginated=True,
        tags=tags,
    )
    add_id_route(
        table,
        "GET",
        r"/api/v1/subscriptions/{id:\d+}/renew",
        renew_subscription,
        summary="Get a payment for the next interval(s)",
        query=renew_query,
        response=SUBSCRIPTION_PAYMENT_SCHEMA,
        tags=tags,
    )
    add_id_route(
        table,
        "POST",
        r"/api/v1/subscriptions/{id:\d+}/renew",
        renew_subscription,
        summary="Get a payment for the next interval(s); honours Idempotency-Key (D11)",
        query=[*renew_query, IDEMPOTENCY_PARAM],
        response=SUBSCRIPTION_PAYMENT_SCHEMA,
        tags=tags,
    )
