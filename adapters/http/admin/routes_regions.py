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


REGIONS = crud.Crud(
    resource=_RES,
    render=region_json,
    fields=_fields,
    rows=lambda request, s: s.infra.list_regions(f.query_flag(request.query, "enabled")),
    one=lambda s, i: s.infra.get_region(i),
    create=lambda s, b: s.infra.create_region(b),
    update=lambda s, i, b: s.infra.update_region(i, b),
    delete=lambda s, i: s.infra.disable_region(i),
    answer=lambda _: {"success": True, "message": "Region disabled successfully"},
).routes()


@require(_RES, AdminAction.VIEW)
async def region_stats(request: web.Request, admin: Admin) -> web.StreamResponse:
    info = await services(request).infra.get_region(path_id(request))
    return data_response({"total_hosts": info.host_count, "total_vms": info.total_vms})


def add_admin_region_routes(table: RouteTable) -> None:
    request = sch.body({"name": f.text_schema(100)}, {"enabled": sch.BOOL, "company_id": sch.UINT})
    enabled = QueryParam("enabled", {"type": "boolean"}, description="only enabled / disabled")
    docs = crud.Docs(
        list="Regions with host, VM and address totals",
        get="One region",
        create="Create a region (company_id defaults to the first company)",
        update="Update a region",
        delete="Disable a region (refused while hosts are assigned)",
        response=sch.REGION,
        request=request,
        deleted=sch.DELETED,
        query=[enabled],
    )
    crud.add_crud(table, "/regions", REGIONS, docs)
    add(
        table,
        "GET",
        f"/regions/{ID}/stats",
        region_stats,
        "A region's host and VM counts",
        response=sch.REGION_STATS,
    )
