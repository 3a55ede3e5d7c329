"""Admin VM template routes (api.md §9.4, permission `vm_template::*`)."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import crud
from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin.routes_cost_plans import MAX_INTERVALS
from adapters.http.admin.views_catalogue import template_json
from adapters.http.openapi import RouteTable
from adapters.http.views_schema import DISK_INTERFACE, DISK_TYPE
from adapters.http.vm_params import json_object
from domain.enums import AdminResource

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


TEMPLATES = crud.Crud(
    resource=_RES,
    render=template_json,
    fields=_fields,
    rows=lambda _, s: s.infra.list_templates(),
    one=lambda s, i: s.infra.get_template(i),
    create=lambda s, b: s.infra.create_template(b),
    update=lambda s, i, b: s.infra.update_template(i, b),
    delete=lambda s, i: s.infra.delete_template(i),
    answer=lambda message: {"success": True, "message": message},
).routes()


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
    docs = crud.Docs(
        list="Every VM template, disabled too",
        get="One VM template",
        create="Create a template (and its cost plan when no cost_plan_id is given)",
        update="Update a template; cost_plan_* fields edit its plan in place",
        delete="Delete a template no VM uses (its plan too when unused)",
        response=sch.TEMPLATE,
        request=request,
        deleted=sch.DELETED,
    )
    crud.add_crud(table, "/vm_templates", TEMPLATES, docs)
