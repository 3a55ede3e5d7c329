"""Admin cost-plan routes (api.md §9.5, permission `vm_template::*`)."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, add, page_of
from adapters.http.admin.views_catalogue import cost_plan_json
from adapters.http.context import services
from adapters.http.envelope import data_response, page_response, parse_page
from adapters.http.openapi import RouteTable
from adapters.http.vm_params import json_object, path_id
from domain.enums import AdminAction, AdminResource

#: cost plans have no resource of their own: they are part of the templates
_RES = AdminResource.VM_TEMPLATE
#: the longest billing interval a plan may have (100 years of days)
MAX_INTERVALS = 36_500


async def _fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("name", f.text(200), required=True)
    read("amount", f.uint(f.U64), required=True)
    read("currency", f.CURRENCY, required=True)
    read("interval_amount", f.uint(MAX_INTERVALS), required=True)
    read("interval_type", f.INTERVAL_TYPE, required=True)
    return read.out


@require(_RES, AdminAction.VIEW)
async def list_plans(request: web.Request, admin: Admin) -> web.StreamResponse:
    page = parse_page(request.query)
    rows = await services(request).infra.list_cost_plans()
    return page_response([cost_plan_json(r) for r in page_of(rows, page)], len(rows), page)


@require(_RES, AdminAction.VIEW)
async def get_plan(request: web.Request, admin: Admin) -> web.StreamResponse:
    info = await services(request).infra.get_cost_plan(path_id(request))
    return data_response(cost_plan_json(info))


@require(_RES, AdminAction.CREATE)
async def create_plan(request: web.Request, admin: Admin) -> web.StreamResponse:
    svc = services(request)
    fields = await _fields(request, patch=False)
    return data_response(cost_plan_json(await svc.infra.create_cost_plan(fields)))


@require(_RES, AdminAction.UPDATE)
async def update_plan(request: web.Request, admin: Admin) -> web.StreamResponse:
    fields = await _fields(request, patch=True)
    svc = services(request)
    info = await svc.infra.update_cost_plan(path_id(request), fields)
    return data_response(cost_plan_json(info))


@require(_RES, AdminAction.DELETE)
async def delete_plan(request: web.Request, admin: Admin) -> web.StreamResponse:
    await services(request).infra.delete_cost_plan(path_id(request))
    return data_response({"success": True, "message": "Cost plan deleted successfully"})


def add_admin_cost_plan_routes(table: RouteTable) -> None:
    request = sch.body(
        {
            "name": f.text_schema(200),
            "amount": sch.UINT,
            "currency": f.CURRENCY_SCHEMA,
            "interval_amount": sch.UINT,
            "interval_type": sch.INTERVAL,
        }
    )
    add(
        table,
        "GET",
        "/cost_plans",
        list_plans,
        "Cost plans, newest first",
        response=sch.COST_PLAN,
        paginated=True,
    )
    add(table, "GET", f"/cost_plans/{ID}", get_plan, "One cost plan", response=sch.COST_PLAN)
    add(
        table,
        "POST",
        "/cost_plans",
        create_plan,
        "Create a cost plan (amount in smallest units)",
        request=request,
        response=sch.COST_PLAN,
    )
    add(
        table,
        "PATCH",
        f"/cost_plans/{ID}",
        update_plan,
        "Update a cost plan (every template on it changes)",
        request=f.patch_of(request),
        response=sch.COST_PLAN,
    )
    add(
        table,
        "DELETE",
        f"/cost_plans/{ID}",
        delete_plan,
        "Delete a cost plan no template uses",
        response=sch.DELETED,
    )
