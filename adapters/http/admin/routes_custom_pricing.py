"""Admin custom pricing (api.md §9.6): body reader, schema and list filter; the copy route."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, add, query_uint
from adapters.http.admin.views_catalogue import pricing_json
from adapters.http.context import services
from adapters.http.envelope import data_response
from adapters.http.openapi import QueryParam, RouteTable
from adapters.http.views_schema import DISK_INTERFACE, DISK_TYPE
from adapters.http.vm_params import json_object, path_id
from app.admin.custom_pricing import PricingInfo
from app.services import Services
from domain.enums import AdminAction, AdminResource, DiskInterface, DiskType
from domain.errors import InvalidInput

RESOURCE = AdminResource.VM_CUSTOM_PRICING
_MAX_DISK_ROWS = len(DiskType) * len(DiskInterface)


def _disk_rows(value: Any, name: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > _MAX_DISK_ROWS:
        raise InvalidInput(f"{name} must be a list of at most {_MAX_DISK_ROWS} disk prices")
    rows = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidInput(f"{name}[{i}] must be an object")
        read = f.Reader(item, patch=False)
        read("kind", f.DISK_TYPE, required=True)
        read("interface", f.DISK_INTERFACE, required=True)
        read("cost", f.MONEY, required=True)
        read("min_disk_size", f.SIZE_BOUND, required=True)
        read("max_disk_size", f.SIZE_BOUND, required=True)
        rows.append(read.out)
    return rows


async def read_fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("name", f.text(100), required=True)
    read("enabled", f.flag)
    read("expires", f.time, nullable=True)
    read("region_id", f.uint(f.U32, 1), required=True)
    read("currency", f.CURRENCY, required=True)
    for name in ("cpu_cost", "memory_cost", "ip4_cost", "ip6_cost"):
        read(name, f.MONEY, required=True)
    for name in ("min_memory", "max_memory"):
        read(name, f.SIZE_BOUND, required=True)
    read("min_cpu", f.uint(f.U8), required=True)
    read("max_cpu", f.uint(f.U8), required=True)
    read.cpu()
    read.caps()
    read("disk_pricing", _disk_rows, required=True)
    return read.out


async def rows(request: web.Request, svc: Services) -> list[PricingInfo]:
    """The models of `?region_id=`, `?enabled=` (any when absent)."""
    return await svc.infra.list_custom_pricings(
        query_uint(request.query, "region_id"), f.query_flag(request.query, "enabled")
    )


@require(RESOURCE, AdminAction.CREATE)
async def copy_pricing(request: web.Request, admin: Admin) -> web.StreamResponse:
    read = f.Reader(await json_object(request), patch=False)
    read("name", f.text(100), required=True)
    read("region_id", f.uint(f.U32, 1))
    read("enabled", f.flag)
    svc = services(request)
    info = await svc.infra.copy_custom_pricing(path_id(request), read.out)
    return data_response(pricing_json(info))


_U = sch.UINT
_M = f.MONEY_SCHEMA
_S = {**f.SIZE_SCHEMA, "minimum": 0}
_DISK = sch.body(
    {
        "kind": DISK_TYPE,
        "interface": DISK_INTERFACE,
        "cost": _M,
        "min_disk_size": _S,
        "max_disk_size": _S,
    }
)
REQUEST = sch.body(
    {
        "name": f.text_schema(100),
        "region_id": _U,
        "currency": f.CURRENCY_SCHEMA,
        "cpu_cost": _M,
        "memory_cost": _M,
        "ip4_cost": _M,
        "ip6_cost": _M,
        "min_cpu": _U,
        "max_cpu": _U,
        "min_memory": _S,
        "max_memory": _S,
        "disk_pricing": {"type": "array", "items": _DISK},
    },
    {"enabled": sch.BOOL, "expires": f.TIME_SCHEMA},
)
QUERY = (
    QueryParam("region_id", {"type": "integer", "minimum": 0}),
    QueryParam("enabled", {"type": "boolean"}),
)


def add_copy_route(table: RouteTable) -> None:
    add(
        table,
        "POST",
        f"/custom_pricing/{ID}/copy",
        copy_pricing,
        "Copy a pricing model with its disk rows",
        request=sch.body({"name": f.text_schema(100)}, {"region_id": _U, "enabled": sch.BOOL}),
        response=sch.PRICING,
    )
