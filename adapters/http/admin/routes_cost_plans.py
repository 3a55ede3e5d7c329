"""Admin cost plans (api.md §9.5, `vm_template::*`): body reader and schema for routes_catalogue."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.vm_params import json_object
from domain.enums import AdminResource

#: cost plans have no resource of their own: they are part of the templates
RESOURCE = AdminResource.VM_TEMPLATE
#: the longest billing interval a plan may have (100 years of days)
MAX_INTERVALS = 36_500


#: a plan's fields, each with its reader and schema (a template takes them as `cost_plan_*`)
PLAN_FIELDS: dict[str, tuple[f.Parse, f.Schema]] = {
    "name": (f.text(200), f.text_schema(200)),
    "amount": (f.uint(f.U64), sch.UINT),
    "currency": (f.CURRENCY, f.CURRENCY_SCHEMA),
    "interval_amount": (f.uint(MAX_INTERVALS), sch.UINT),
    "interval_type": (f.INTERVAL_TYPE, sch.INTERVAL),
}


async def read_fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    for name, (parse, _) in PLAN_FIELDS.items():
        read(name, parse, required=True)
    return read.out


REQUEST = sch.body({name: schema for name, (_, schema) in PLAN_FIELDS.items()})
