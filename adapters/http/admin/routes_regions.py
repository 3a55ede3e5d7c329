"""Admin region routes (api.md §9.7, permission `hosts::*`): list, get, stats, create, update,
disable."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, add, page_of
from adapters.http.admin.views_catalogue import region_json
from adapters.http.context import services
from adapters.http.envelope import data_response, page_response, parse_page
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


@require(_RES, AdminAction.VIEW)
async def list_regions(request: web.Request, admin: Admin) -> web.StreamResponse:
    page = parse_page(request.query)
    enabled = f.query_flag(request.query, "enabled")
    rows = await services(request).infra.list_regions(enabled)
    return page_response([region_json(r) for r in page_of(rows, page)], len(rows), page)


@require(_RES, AdminAction.VIEW)
async def get_region(request: web.Request, admin: Admin) -> web.StreamResponse:
    return data_response(region_json(await services(request).infra.get_region(path_id(request))))


@require(_RES, AdminAction.VIEW)
async def region_stats(request: web.Request, admin: Admin) -> web.StreamResponse:
    info = await services(request).infra.get_region(path_id(request))
    return data_response({"total_hosts": info.host_count, "total_vms": info.total_vms})


@require(_RES, AdminAction.CREATE)
async def create_region(request: web.Request, admin: Admin) -> web.StreamResponse:
    fields = await _fields(request, patch=False)
    return data_response(region_json(await services(request).infra.create_region(fields)))


@require(_RES, AdminAction.UPDATE)
async def update_region(request: web.Request, admin: Admin) -> web.StreamResponse:
    fields = await _fields(request, patch=True)
    info = await services(request).infra.update_region(path_id(request), fields)
    return data_response(region_json(info))


@require(_RES, AdminAction.DELETE)
async def delete_region(request: web.Request, admin: Admin) -> web.StreamResponse:
    await services(request).infra.disable_region(path_id(request))
    return data_response({"success": True, "message": "Region disabled successfully"})


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
