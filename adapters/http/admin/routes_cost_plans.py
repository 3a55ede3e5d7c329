"""Admin cost-plan routes (api.md §9.5, permission `vm_template::*`)."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import crud
from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin.views_catalogue import cost_plan_json
from adapters.http.openapi import RouteTable
from adapters.http.vm_params import json_object
from domain.enums import AdminResource

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


PLANS = crud.Crud(
    resource=_RES,
    render=cost_plan_json,
    fields=_fields,
    rows=lambda _, s: s.infra.list_cost_plans(),
    one=lambda s, i: s.infra.get_cost_plan(i),
    create=lambda s, b: s.infra.create_cost_plan(b),
    update=lambda s, i, b: s.infra.update_cost_plan(i, b),
    delete=lambda s, i: s.infra.delete_cost_plan(i),
    answer=lambda _: {"success": True, "message": "Cost plan deleted successfully"},
).routes()


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
    docs = crud.Docs(
        list="Cost plans, newest first",
        get="One cost plan",
        create="Create a cost plan (amount in smallest units)",
        update="Update a cost plan (every template on it changes)",
        delete="Delete a cost plan no template uses",
        response=sch.COST_PLAN,
        request=request,
        deleted=sch.DELETED,
    )
    crud.add_crud(table, "/cost_plans", PLANS, docs)
