"""Admin IP space (api.md §9.14): reader and schema for routes_catalogue; prices, sold ranges."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, add, page_of, query_uint
from adapters.http.admin.views_catalogue import (
    sold_range_json,
    space_pricing_json,
)
from adapters.http.bounds import parse_uint
from adapters.http.context import services
from adapters.http.envelope import data_response, page_response, parse_page
from adapters.http.openapi import QueryParam, RouteTable, Schema
from adapters.http.vm_params import json_object, path_id
from app.admin.ip_space import SpaceInfo
from app.services import Services
from domain.enums import AdminAction, AdminResource, InternetRegistry
from domain.errors import InvalidInput
from domain.model import IpSpacePricing

RESOURCE = AdminResource.IP_SPACE
PRICING_ID = r"{pricing_id:\d+}"


def _registry(value: Any, name: str) -> InternetRegistry:
    if isinstance(value, bool) or not isinstance(value, int) or value not in set(InternetRegistry):
        raise InvalidInput("Invalid registry value")
    return InternetRegistry(value)


async def read_fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("company_id", f.uint(f.U32, 1))
    read("cidr", f.text(200), required=True)
    read("min_prefix_size", f.uint(f.U16), required=True)
    read("max_prefix_size", f.uint(f.U16), required=True)
    read("registry", _registry, required=True)
    read("external_id", f.text(255), nullable=True)
    read("is_available", f.flag)
    read("is_reserved", f.flag)
    read("metadata", f.json_value(f.JSON_LIMIT), nullable=True)
    if "external_id" in read.out:
        read.out["external_id"] = (read.out["external_id"] or "").strip() or None
    return read.out


async def _price_fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("prefix_size", f.uint(128), required=True)
    read("price_per_month", f.MONEY, required=True)
    read("currency", f.CURRENCY)
    read("setup_fee", f.MONEY)
    return read.out


async def spaces(request: web.Request, svc: Services) -> list[SpaceInfo]:
    raw_registry = request.query.get("registry")
    registry = (
        None if not raw_registry else parse_uint(raw_registry, "registry", minimum=0, maximum=4)
    )
    return await svc.infra.list_ip_spaces(f.query_flag(request.query, "is_available"), registry)


async def _parent_cidr(request: web.Request, space_id: int) -> str:
    return (await services(request).infra.get_ip_space(space_id)).space.cidr


async def _priced(request: web.Request, space_id: int, price: IpSpacePricing) -> web.Response:
    """One price of the space, shown with the space's CIDR."""
    return data_response(space_pricing_json(price, await _parent_cidr(request, space_id)))


@require(RESOURCE, AdminAction.VIEW)
async def list_pricing(request: web.Request, admin: Admin) -> web.StreamResponse:
    page = parse_page(request.query)
    space_id = path_id(request)
    rows = await services(request).infra.list_ip_pricing(space_id)
    cidr = await _parent_cidr(request, space_id)
    return page_response(
        [space_pricing_json(p, cidr) for p in page_of(rows, page)], len(rows), page
    )


@require(RESOURCE, AdminAction.VIEW)
async def get_pricing(request: web.Request, admin: Admin) -> web.StreamResponse:
    space_id = path_id(request)
    price = await services(request).infra.get_ip_pricing(space_id, path_id(request, "pricing_id"))
    return await _priced(request, space_id, price)


@require(RESOURCE, AdminAction.CREATE)
async def create_pricing(request: web.Request, admin: Admin) -> web.StreamResponse:
    space_id = path_id(request)
    fields = await _price_fields(request, patch=False)
    price = await services(request).infra.create_ip_pricing(space_id, fields)
    return await _priced(request, space_id, price)


@require(RESOURCE, AdminAction.UPDATE)
async def update_pricing(request: web.Request, admin: Admin) -> web.StreamResponse:
    space_id = path_id(request)
    fields = await _price_fields(request, patch=True)
    pricing_id = path_id(request, "pricing_id")
    price = await services(request).infra.update_ip_pricing(space_id, pricing_id, fields)
    return await _priced(request, space_id, price)


@require(RESOURCE, AdminAction.DELETE)
async def delete_pricing(request: web.Request, admin: Admin) -> web.StreamResponse:
    await services(request).infra.delete_ip_pricing(
        path_id(request), path_id(request, "pricing_id")
    )
    return data_response(None)


@require(AdminResource.SUBSCRIPTIONS, AdminAction.VIEW)
async def list_sold(request: web.Request, admin: Admin) -> web.StreamResponse:
    page = parse_page(request.query)
    rows = await services(request).infra.list_sold_ips(
        path_id(request),
        query_uint(request.query, "user_id"),
        f.query_flag(request.query, "is_active"),
    )
    return page_response([sold_range_json(r) for r in page_of(rows, page)], len(rows), page)


_U = sch.UINT
_REGISTRY: Schema = {"type": "integer", "minimum": 0, "maximum": 4}
REQUEST = sch.body(
    {
        "cidr": f.text_schema(200),
        "min_prefix_size": _U,
        "max_prefix_size": _U,
        "registry": _REGISTRY,
    },
    {
        "company_id": _U,
        "external_id": f.text_schema(255, nullable=True),
        "is_available": sch.BOOL,
        "is_reserved": sch.BOOL,
        "metadata": {},
    },
)
QUERY = (QueryParam("is_available", {"type": "boolean"}), QueryParam("registry", _REGISTRY))


def add_pricing_routes(table: RouteTable) -> None:
    """A space's prices, then the ranges sold from it."""
    u = _U
    price = sch.body(
        {"prefix_size": u, "price_per_month": f.MONEY_SCHEMA},
        {"currency": f.CURRENCY_SCHEMA, "setup_fee": f.MONEY_SCHEMA},
    )
    one = f"/ip_space/{ID}/pricing/{PRICING_ID}"
    add(
        table,
        "GET",
        f"/ip_space/{ID}/pricing",
        list_pricing,
        "A space's prices, id desc",
        response=sch.SPACE_PRICING,
        paginated=True,
    )
    add(
        table,
        "POST",
        f"/ip_space/{ID}/pricing",
        create_pricing,
        "Price a prefix size of the space",
        request=price,
        response=sch.SPACE_PRICING,
    )
    add(table, "GET", one, get_pricing, "One price of the space", response=sch.SPACE_PRICING)
    add(
        table,
        "PATCH",
        one,
        update_pricing,
        "Update a price of the space",
        request=f.patch_of(price),
        response=sch.SPACE_PRICING,
    )
    add(table, "DELETE", one, delete_pricing, "Delete a price of the space", response=sch.NULL)
    add(
        table,
        "GET",
        f"/ip_space/{ID}/subscriptions",
        list_sold,
        "Ranges sold from the space",
        query=[
            QueryParam("user_id", {"type": "integer", "minimum": 0}),
            QueryParam("is_active", {"type": "boolean"}),
        ],
        response=sch.SOLD_RANGE,
        paginated=True,
    )
