"""Admin cost plans (api.md §9.5, `vm_template::*`): body reader and schema for routes_catalogue."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.vm_params import json_object
from domain.enums import AdminResource
from domain.intervals import MAX_ANY_INTERVAL_AMOUNT, MAX_INTERVAL_AMOUNT

#: cost plans have no resource of their own: they are part of the templates
RESOURCE = AdminResource.VM_TEMPLATE
#: the widest interval amount of any unit; the use case checks it against the plan's unit
_INTERVAL_AMOUNT: f.Schema = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_ANY_INTERVAL_AMOUNT,
    "description": ", ".join(
        f"at most {most} for {unit.name.lower()}" for unit, most in MAX_INTERVAL_AMOUNT.items()
    ),
}


#: a plan's fields, each with its reader and schema (a template takes them as `cost_plan_*`)
PLAN_FIELDS: dict[str, tuple[f.Parse, f.Schema]] = {
    "name": (f.text(200), f.text_schema(200)),
    "amount": (f.MONEY, f.MONEY_SCHEMA),
    "currency": (f.CURRENCY, f.CURRENCY_SCHEMA),
    "interval_amount": (f.uint(MAX_ANY_INTERVAL_AMOUNT), _INTERVAL_AMOUNT),
    "interval_type": (f.INTERVAL_TYPE, sch.INTERVAL),
}


async def read_fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    for name, (parse, _) in PLAN_FIELDS.items():
        read(name, parse, required=True)
    return read.out


REQUEST = sch.body({name: schema for name, (_, schema) in PLAN_FIELDS.items()})
