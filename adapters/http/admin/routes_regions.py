"""Admin region routes (api.md §9.7, permission `hosts::*`): list, get, stats, create, update,
disable."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import crud
from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, add
from adapters.http.admin.views_catalogue import region_json
from adapters.http.context import services
from adapters.http.envelope import data_response
from adapters.http.openapi import QueryParam, RouteTable
from adapters.http.vm_params import json_object, path_id
from domain.enums import AdminAction, AdminResource

#: regions are guarded by `hosts::*`, not `host_region` (as the reference does)
_RES = AdminResource.HOSTS


async def _fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("name", f.text(100), required=True)
    read("enabled", f.flag)
    read("company_id", f.uint(f.U32, 1))
    return read.out


list_regions = crud.list_route(
    _RES,
    lambda request, s: s.infra.list_regions(f.query_flag(request.query, "enabled")),
    region_json,
)

get_region = crud.get_route(_RES, lambda s, i: s.infra.get_region(i), region_json)


@require(_RES, AdminAction.VIEW)
async def region_stats(request: web.Request, admin: Admin) -> web.StreamResponse:
    info = await services(request).infra.get_region(path_id(request))
    return data_response({"total_hosts": info.host_count, "total_vms": info.total_vms})


create_region = crud.create_route(_RES, _fields, lambda s, b: s.infra.create_region(b), region_json)

update_region = crud.update_route(
    _RES, _fields, lambda s, i, b: s.infra.update_region(i, b), region_json
)

delete_region = crud.delete_route(
    _RES,
    lambda s, i: s.infra.disable_region(i),
    lambda _: {"success": True, "message": "Region disabled successfully"},
)


def add_admin_region_routes(table: RouteTable) -> None:
    request = sch.body({"name": f.text_schema(100)}, {"enabled": sch.BOOL, "company_id": sch.UINT})
    enabled = QueryParam("enabled", {"type": "boolean"}, description="only enabled / disabled")
    add(
        table,
        "GET",
        "/regions",
        list_regions,
        "Regions with host, VM and address totals",
        response=sch.REGION,
        paginated=True,
        query=[enabled],
    )
    add(table, "GET", f"/regions/{ID}", get_region, "One region", response=sch.REGION)
    add(
        table,
        "GET",
        f"/regions/{ID}/stats",
        region_stats,
        "A region's host and VM counts",
        response=sch.REGION_STATS,
    )
    add(
        table,
        "POST",
        "/regions",
        create_region,
        "Create a region (company_id defaults to the first company)",
        request=request,
        response=sch.REGION,
    )
    add(
        table,
        "PATCH",
        f"/regions/{ID}",
        update_region,
        "Update a region",
        request=f.patch_of(request),
        response=sch.REGION,
    )
    add(
        table,
        "DELETE",
        f"/regions/{ID}",
        delete_region,
        "Disable a region (refused while hosts are assigned)",
        response=sch.DELETED,
    )
