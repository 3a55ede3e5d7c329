"""Admin VM templates (api.md §9.4, `vm_template::*`): reader and schema for routes_catalogue."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin.routes_cost_plans import PLAN_FIELDS
from adapters.http.views_schema import DISK_INTERFACE, DISK_TYPE
from adapters.http.vm_params import json_object
from domain.enums import AdminResource

RESOURCE = AdminResource.VM_TEMPLATE


async def read_fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("name", f.text(200), required=True)
    read("enabled", f.flag)
    read("expires", f.time, nullable=True)
    read("cpu", f.uint(f.U8, 1), required=True)
    read("memory", f.SIZE, required=True)
    read("disk_size", f.SIZE, required=True)
    read("disk_type", f.DISK_TYPE, required=True)
    read("disk_interface", f.DISK_INTERFACE, required=True)
    read("cost_plan_id", f.uint(f.U32, 1))
    read("region_id", f.uint(f.U32, 1), required=True)
    read.cpu()
    read.caps()
    for name, (parse, _) in PLAN_FIELDS.items():
        read(f"cost_plan_{name}", parse)
    return read.out


REQUEST = sch.body(
    {
        "name": f.text_schema(200),
        "cpu": sch.UINT,
        "memory": f.SIZE_SCHEMA,
        "disk_size": f.SIZE_SCHEMA,
        "disk_type": DISK_TYPE,
        "disk_interface": DISK_INTERFACE,
        "region_id": sch.UINT,
    },
    {
        "enabled": sch.BOOL,
        "expires": f.TIME_SCHEMA,
        "cost_plan_id": sch.UINT,
        **{f"cost_plan_{name}": schema for name, (_, schema) in PLAN_FIELDS.items()},
    },
)
