"""Admin VM template routes (api.md §9.4, permission `vm_template::*`)."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, add, page_of
from adapters.http.admin.routes_cost_plans import MAX_INTERVALS
from adapters.http.admin.views_catalogue import template_json
from adapters.http.context import services
from adapters.http.envelope import data_response, page_response, parse_page
from adapters.http.openapi import RouteTable
from adapters.http.views_schema import DISK_INTERFACE, DISK_TYPE
from adapters.http.vm_params import json_object, path_id
from domain.enums import AdminAction, AdminResource

_RES = AdminResource.VM_TEMPLATE


async def _fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("name", f.text(200), required=True)
    read("enabled", f.flag)
    read("expires", f.time, nullable=True)
    read("cpu", f.uint(f.U8, 1), required=True)
    read("memory", f.uint(f.U64, 1), required=True)
    read("disk_size", f.uint(f.U64, 1), required=True)
    read("disk_type", f.DISK_TYPE, required=True)
    read("disk_interface", f.DISK_INTERFACE, required=True)
    read("cost_plan_id", f.uint(f.U32, 1))
    read("region_id", f.uint(f.U32, 1), required=True)
    read.cpu()
    read.caps()
    read("cost_plan_name", f.text(200))
    read("cost_plan_amount", f.uint(f.U64))
    read("cost_plan_currency", f.CURRENCY)
    read("cost_plan_interval_amount", f.uint(MAX_INTERVALS))
    read("cost_plan_interval_type", f.INTERVAL_TYPE)
    return read.out


@require(_RES, AdminAction.VIEW)
async def list_templates(request: web.Request, admin: Admin) -> web.StreamResponse:
    page = parse_page(request.query)
    rows = await services(request).infra.list_templates()
    return page_response([template_json(r) for r in page_of(rows, page)], len(rows), page)


@require(_RES, AdminAction.VIEW)
async def get_template(request: web.Request, admin: Admin) -> web.StreamResponse:
    info = await services(request).infra.get_template(path_id(request))
    return data_response(template_json(info))


@require(_RES, AdminAction.CREATE)
async def create_template(request: web.Request, admin: Admin) -> web.StreamResponse:
    svc = services(request)
    fields = await _fields(request, patch=False)
    return data_response(template_json(await svc.infra.create_template(fields)))


@require(_RES, AdminAction.UPDATE)
async def update_template(request: web.Request, admin: Admin) -> web.StreamResponse:
    fields = await _fields(request, patch=True)
    svc = services(request)
    info = await svc.infra.update_template(path_id(request), fields)
    return data_response(template_json(info))


@require(_RES, AdminAction.DELETE)
async def delete_template(request: web.Request, admin: Admin) -> web.StreamResponse:
    message = await services(request).infra.delete_template(path_id(request))
    return data_response({"success": True, "message": message})


def add_admin_template_routes(table: RouteTable) -> None:
    request = sch.body(
        {
            "name": f.text_schema(200),
            "cpu": sch.UINT,
            "memory": sch.UINT,
            "disk_size": sch.UINT,
            "disk_type": DISK_TYPE,
            "disk_interface": DISK_INTERFACE,
            "region_id": sch.UINT,
        },
        {
            "enabled": sch.BOOL,
            "expires": f.TIME_SCHEMA,
            "cost_plan_id": sch.UINT,
            "cost_plan_name": f.text_schema(200),
            "cost_plan_amount": sch.UINT,
            "cost_plan_currency": f.CURRENCY_SCHEMA,
            "cost_plan_interval_amount": sch.UINT,
            "cost_plan_interval_type": sch.INTERVAL,
        },
    )
    add(
        table,
        "GET",
        "/vm_templates",
        list_templates,
        "Every VM template, disabled too",
        response=sch.TEMPLATE,
        paginated=True,
    )
    add(table, "GET", f"/vm_templates/{ID}", get_template, "One VM template", response=sch.TEMPLATE)
    add(
        table,
        "POST",
        "/vm_templates",
        create_template,
        "Create a template (and its cost plan when no cost_plan_id is given)",
        request=request,
        response=sch.TEMPLATE,
    )
    add(
        table,
        "PATCH",
        f"/vm_templates/{ID}",
        update_template,
        "Update a template; cost_plan_* fields edit its plan in place",
        request=f.patch_of(request),
        response=sch.TEMPLATE,
    )
    add(
        table,
        "DELETE",
        f"/vm_templates/{ID}",
        delete_template,
        "Delete a template no VM uses (its plan too when unused)",
        response=sch.DELETED,
    )
