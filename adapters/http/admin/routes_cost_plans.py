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


async def read_fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("name", f.text(200), required=True)
    read("amount", f.uint(f.U64), required=True)
    read("currency", f.CURRENCY, required=True)
    read("interval_amount", f.uint(MAX_INTERVALS), required=True)
    read("interval_type", f.INTERVAL_TYPE, required=True)
    return read.out


REQUEST = sch.body(
    {
        "name": f.text_schema(200),
        "amount": sch.UINT,
        "currency": f.CURRENCY_SCHEMA,
        "interval_amount": sch.UINT,
        "interval_type": sch.INTERVAL,
    }
)
