"""Public catalogue routes (api.md §6.3, §6.6, §6.10): images, offers, prices, methods, IP space."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from adapters.http.bounds import ID_MIN
from adapters.http.context import services
from adapters.http.envelope import (
    data_response,
    dump_bytes,
    page_response,
    parse_page,
    read_json,
)
from adapters.http.openapi import RouteTable
from adapters.http.views_catalogue import (
    custom_template_json,
    image_json,
    ip_space_json,
    payment_method_json,
    price_json,
    synthetic_methods,
    template_json,
)
from adapters.http.views_input import (
    add_id_route,
    enum_field,
    json_object,
    path_id,
    required_integer,
)
from adapters.http.views_schema import (
    CUSTOM_VM_REQUEST_SCHEMA,
    IMAGE_SCHEMA,
    IP_SPACE_SCHEMA,
    PAYMENT_INFO_SCHEMA,
    PRICE_SCHEMA,
    TEMPLATES_RESPONSE_SCHEMA,
)
from app.queries.catalogue import (
    CATALOGUE_TTL_S,
    OFFERS_TTL_S,
    CustomSpecRequest,
    cached_images,
    cached_offers,
    cached_payment_methods,
    custom_spec_price,
    get_ip_space,
    list_ip_spaces,
)
from domain.enums import DiskInterface, DiskType

U16_MAX = 65535


async def _rendered(
    request: web.Request, key: str, ttl: float, render: Callable[[], Awaitable[bytes]]
) -> web.StreamResponse:
    """A catalogue body rendered once per cache entry (same invalidation as its data)."""
    cache = services(request).catalogue_cache
    body = await render() if cache is None else await cache.get(key, render, ttl=ttl)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


async def get_images(request: web.Request) -> web.StreamResponse:
    svc = services(request)

    async def render() -> bytes:
        images = await cached_images(svc.catalogue_cache, svc.uow_factory)
        return dump_bytes({"data": [image_json(i) for i in images]})

    return await _rendered(request, "http:images", CATALOGUE_TTL_S, render)


async def get_templates(request: web.Request) -> web.StreamResponse:
    """Templates with converted prices, and the custom pricings (always an array, maybe [])."""
    svc = services(request)

    async def render() -> bytes:
        offers = await cached_offers(
            svc.catalogue_cache,
            svc.uow_factory,
            svc.rates,
            svc.clock,
            svc.unpaid_room.host_share,
        )
        templates = [
            template_json(o.template, o.plan, o.region, o.other_price) for o in offers.templates
        ]
        custom = [custom_template_json(o) for o in offers.custom]
        return dump_bytes({"data": {"templates": templates, "custom_template": custom}})

    return await _rendered(request, "http:templates", OFFERS_TTL_S, render)


async def post_custom_price(request: web.Request) -> web.StreamResponse:
    body = json_object(await read_json(request))
    spec = CustomSpecRequest(
        pricing_id=required_integer(body, "pricing_id", minimum=ID_MIN),
        cpu=required_integer(body, "cpu", maximum=U16_MAX),
        memory=required_integer(body, "memory"),
        disk=required_integer(body, "disk"),
        disk_type=enum_field(body, "disk_type", DiskType),
        disk_interface=enum_field(body, "disk_interface", DiskInterface),
    )
    price = await custom_spec_price(services(request).uow_factory, spec)
    return data_response(price_json(price))


async def get_payment_methods(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    listing = await cached_payment_methods(svc.catalogue_cache, svc.uow_factory)
    if svc.rails.lightning_off:  # a fiat-only shop offers no way to pay by Lightning
        listing = listing.without_lightning()
    methods = [payment_method_json(c) for c in listing.configs]
    if listing.lightning:
        methods += synthetic_methods()
    return data_response(methods)


async def get_ip_spaces(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    page = parse_page(request.query)
    found = await list_ip_spaces(
        svc.uow_factory,
        await svc.rates.table(),
        svc.clock.now(),
        page.limit,
        page.offset,
        svc.unpaid_ip_room,
    )
    return page_response([ip_space_json(o) for o in found.items], found.total, page)


async def get_ip_space_by_id(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    space_id = path_id(request)
    rates = await svc.rates.table()
    offer = await get_ip_space(
        svc.uow_factory, space_id, rates, svc.clock.now(), svc.unpaid_ip_room
    )
    return data_response(ip_space_json(offer))


def add_catalogue_routes(table: RouteTable) -> None:
    """Register the public catalogue routes.

    Call this before the VM and payment routes are added: `/api/v1/vm/templates` and
    `/api/v1/payment/methods` must be matched before `/api/v1/vm/{id}` and
    `/api/v1/payment/{id}` (api.md §1).
    """
    table.add(
        "GET",
        "/api/v1/image",
        get_images,
        summary="Enabled OS images",
        response={"type": "array", "items": IMAGE_SCHEMA},
        tags=("catalogue",),
    )
    table.add(
        "GET",
        "/api/v1/vm/templates",
        get_templates,
        summary="Orderable VM templates and custom pricings",
        response=TEMPLATES_RESPONSE_SCHEMA,
        tags=("catalogue",),
    )
    table.add(
        "POST",
        "/api/v1/vm/custom-template/price",
        post_custom_price,
        summary="Monthly price of a custom VM spec (in the pricing's currency)",
        request=CUSTOM_VM_REQUEST_SCHEMA,
        response=PRICE_SCHEMA,
        tags=("catalogue",),
    )
    table.add(
        "GET",
        "/api/v1/payment/methods",
        get_payment_methods,
        summary="Enabled payment methods",
        response={"type": "array", "items": PAYMENT_INFO_SCHEMA},
        tags=("payment",),
    )
    table.add(
        "GET",
        "/api/v1/ip_space",
        get_ip_spaces,
        summary="IP space for sale",
        response=IP_SPACE_SCHEMA,
        paginated=True,
        tags=("ip-space",),
    )
    add_id_route(
        table,
        "GET",
        r"/api/v1/ip_space/{id:\d+}",
        get_ip_space_by_id,
        summary="One IP space for sale",
        response=IP_SPACE_SCHEMA,
        tags=("ip-space",),
    )
