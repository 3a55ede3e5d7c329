"""Admin custom-pricing routes (api.md §9.6, permission `vm_custom_pricing::*`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.http.admin import crud
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
from domain.enums import AdminAction, AdminResource, DiskInterface, DiskType
from domain.errors import InvalidInput

_RES = AdminResource.VM_CUSTOM_PRICING
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
        read("cost", f.uint(f.U64), required=True)
        read("min_disk_size", f.uint(f.U64), required=True)
        read("max_disk_size", f.uint(f.U64), required=True)
        rows.append(read.out)
    return rows


async def _fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("name", f.text(100), required=True)
    read("enabled", f.flag)
    read("expires", f.time, nullable=True)
    read("region_id", f.uint(f.U32, 1), required=True)
    read("currency", f.CURRENCY, required=True)
    for name in ("cpu_cost", "memory_cost", "ip4_cost", "ip6_cost", "min_memory", "max_memory"):
        read(name, f.uint(f.U64), required=True)
    read("min_cpu", f.uint(f.U8), required=True)
    read("max_cpu", f.uint(f.U8), required=True)
    read.cpu()
    read.caps()
    read("disk_pricing", _disk_rows, required=True)
    return read.out


PRICING = crud.Crud(
    resource=_RES,
    render=pricing_json,
    fields=_fields,
    rows=lambda request, s: s.infra.list_custom_pricings(
        query_uint(request.query, "region_id"), f.query_flag(request.query, "enabled")
    ),
    one=lambda s, i: s.infra.get_custom_pricing(i),
    create=lambda s, b: s.infra.create_custom_pricing(b),
    update=lambda s, i, b: s.infra.update_custom_pricing(i, b),
    delete=lambda s, i: s.infra.delete_custom_pricing(i),
    answer=lambda message: {"success": True, "message": message},
).routes()


@require(_RES, AdminAction.CREATE)
async def copy_pricing(request: web.Request, admin: Admin) -> web.StreamResponse:
    read = f.Reader(await json_object(request), patch=False)
    read("name", f.text(100), required=True)
    read("region_id", f.uint(f.U32, 1))
    read("enabled", f.flag)
    svc = services(request)
    info = await svc.infra.copy_custom_pricing(path_id(request), read.out)
    return data_response(pricing_json(info))


def add_admin_custom_pricing_routes(table: RouteTable) -> None:
    u = sch.UINT
    disk = sch.body(
        {
            "kind": DISK_TYPE,
            "interface": DISK_INTERFACE,
            "cost": u,
            "min_disk_size": u,
            "max_disk_size": u,
        }
    )
    request = sch.body(
        {
            "name": f.text_schema(100),
            "region_id": u,
            "currency": f.CURRENCY_SCHEMA,
            "cpu_cost": u,
            "memory_cost": u,
            "ip4_cost": u,
            "ip6_cost": u,
            "min_cpu": u,
            "max_cpu": u,
            "min_memory": u,
            "max_memory": u,
            "disk_pricing": {"type": "array", "items": disk},
        },
        {"enabled": sch.BOOL, "expires": f.TIME_SCHEMA},
    )
    query = [
        QueryParam("region_id", {"type": "integer", "minimum": 0}),
        QueryParam("enabled", {"type": "boolean"}),
    ]
    docs = crud.Docs(
        list="Custom pricing models",
        get="One custom pricing model",
        create="Create a pricing model (prices per core / GiB / address per month)",
        update="Update a pricing model; disk_pricing replaces every disk row",
        delete="Delete a pricing model (disabled instead while templates use it)",
        response=sch.PRICING,
        request=request,
        deleted=sch.DELETED,
        query=query,
    )
    crud.add_crud(table, "/custom_pricing", PRICING, docs)
    add(
        table,
        "POST",
        f"/custom_pricing/{ID}/copy",
        copy_pricing,
        "Copy a pricing model with its disk rows",
        request=sch.body({"name": f.text_schema(100)}, {"region_id": u, "enabled": sch.BOOL}),
        response=sch.PRICING,
    )
