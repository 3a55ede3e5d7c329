"""Admin regions (api.md §9.7, `hosts::*`): body reader and schema for routes_catalogue; stats."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, add
from adapters.http.context import services
from adapters.http.envelope import data_response
from adapters.http.openapi import QueryParam, RouteTable
from adapters.http.vm_params import json_object, path_id
from domain.enums import AdminAction, AdminResource

#: regions are guarded by `hosts::*`, not `host_region` (as the reference does)
RESOURCE = AdminResource.HOSTS


async def read_fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("name", f.text(100), required=True)
    read("enabled", f.flag)
    read("company_id", f.uint(f.U32, 1))
    return read.out


@require(RESOURCE, AdminAction.VIEW)
async def region_stats(request: web.Request, admin: Admin) -> web.StreamResponse:
    info = await services(request).infra.get_region(path_id(request))
    return data_response({"total_hosts": info.host_count, "total_vms": info.total_vms})


REQUEST = sch.body({"name": f.text_schema(100)}, {"enabled": sch.BOOL, "company_id": sch.UINT})
QUERY = (QueryParam("enabled", {"type": "boolean"}, description="only enabled / disabled"),)


def add_stats_route(table: RouteTable) -> None:
    add(
        table,
        "GET",
        f"/regions/{ID}/stats",
        region_stats,
        "A region's host and VM counts",
        response=sch.REGION_STATS,
    )
