"""Admin VM routes (api.md §9.3): list, get, start, stop, extend, history."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import (
    ID,
    JOB_SCHEMA,
    NULL,
    TEXT_LIMIT,
    TEXT_SCHEMA,
    add,
    body_str,
    query_bool,
    query_uint,
    stored,
)
from adapters.http.admin.views import history_json, vm_json, vms_json
from adapters.http.bounds import ID_SCHEMA
from adapters.http.context import services
from adapters.http.envelope import data_response, page_response, parse_page
from adapters.http.openapi import QueryParam, RouteTable
from adapters.http.vm_params import json_object, optional_json_object, path_id, required_int
from app.billing.errors import NotFound, VmNotFound
from app.queries.admin_vms import admin_vm_page, vm_list_filter
from domain.account_credit import MAX_REFERENCE
from domain.enums import AdminAction, AdminResource
from domain.model import Vm

_VM = AdminResource.VIRTUAL_MACHINES
_CHUNK = 500
_INT = ID_SCHEMA


async def _vm_json(request: web.Request, vm: Vm) -> dict[str, object]:
    svc = services(request)
    state = None if svc.vm_states is None else await svc.vm_states.get(vm.id)
    async with svc.uow_factory() as uow:
        return await vm_json(uow, vm, state)


@require(_VM, AdminAction.VIEW)
async def list_vms(request: web.Request, admin: Admin) -> web.StreamResponse:
    """VMs, id descending, filtered by user, pubkey, host and host region (combined), the
    soft-deleted ones too with `include_deleted=true` (shown with `deleted: true`).

    Filtered, counted and paged by the storage: a fixed number of statements whatever the
    number of VMs. A pubkey that is not hex lists nothing (an empty page, total 0).
    """
    q = request.query
    page = parse_page(q)
    which = vm_list_filter(
        user_id=query_uint(q, "user_id"),
        pubkey=q.get("pubkey"),
        host_id=query_uint(q, "host_id"),
        region_id=query_uint(q, "region_id"),
        include_deleted=query_bool(q, "include_deleted"),
    )
    svc = services(request)
    async with svc.uow_factory() as uow:
        found = await admin_vm_page(uow, svc.vm_states, which, page.limit, page.offset)
        items = await vms_json(uow, found.vms, found.states)
    return page_response(items, found.total, page)


async def _vm(request: web.Request) -> Vm:
    return await stored(request, lambda uow: uow.vms, VmNotFound("VM not found"))


@require(_VM, AdminAction.VIEW)
async def get_vm(request: web.Request, admin: Admin) -> web.StreamResponse:
    return data_response(await _vm_json(request, await _vm(request)))


async def _power(request: web.Request, admin: Admin, start: bool) -> web.StreamResponse:
    body = await optional_json_object(request)
    svc = services(request)
    job_id = await svc.admin.power_vm(
        vm_id=path_id(request),
        start=start,
        admin_id=admin.user.id,
        reason=body_str(body, "reason", TEXT_LIMIT, multiline=True),
    )
    return data_response({"job_id": job_id})


@require(_VM, AdminAction.UPDATE)
async def start_vm(request: web.Request, admin: Admin) -> web.StreamResponse:
    return await _power(request, admin, True)


@require(_VM, AdminAction.UPDATE)
async def stop_vm(request: web.Request, admin: Admin) -> web.StreamResponse:
    return await _power(request, admin, False)


@require(_VM, AdminAction.UPDATE)
async def extend(request: web.Request, admin: Admin) -> web.StreamResponse:
    body = await json_object(request)
    svc = services(request)
    await svc.admin.extend_vm(
        vm_id=path_id(request),
        days=required_int(body, "days", maximum=2**32 - 1),
        admin_id=admin.user.id,
        reason=body_str(body, "reason", TEXT_LIMIT, multiline=True),
        reference=body_str(body, "reference", MAX_REFERENCE),
    )
    return data_response(None)


@require(_VM, AdminAction.VIEW)
async def history(request: web.Request, admin: Admin) -> web.StreamResponse:
    page = parse_page(request.query)
    vm = await _vm(request)
    async with services(request).uow_factory() as uow:
        found = await uow.vm_history.list_by_vm(vm.id, page.limit, page.offset)
        items = [await history_json(uow, e) for e in found.items]
    return page_response(items, found.total, page)


@require(_VM, AdminAction.VIEW)
async def history_entry(request: web.Request, admin: Admin) -> web.StreamResponse:
    vm = await _vm(request)
    wanted = path_id(request, "history_id")
    async with services(request).uow_factory() as uow:
        offset = 0
        while True:
            chunk = await uow.vm_history.list_by_vm(vm.id, _CHUNK, offset)
            for entry in chunk.items:
                if entry.id == wanted:
                    return data_response(await history_json(uow, entry))
            offset += len(chunk.items)
            if not chunk.items or offset >= chunk.total:
                break
    raise NotFound("History entry does not belong to this VM")


def add_admin_vm_routes(table: RouteTable) -> None:
    vm = f"/vms/{ID}"
    filters = (
        *(QueryParam(n, dict(_INT)) for n in ("user_id", "host_id", "region_id")),
        QueryParam("pubkey", description="hex; unknown or not hex → empty page, total 0"),
        QueryParam(
            "include_deleted",
            {"type": "boolean", "default": False},
            description="`true` lists soft-deleted VMs too (`deleted: true`)",
        ),
    )
    add(
        table,
        "GET",
        "/vms",
        list_vms,
        "VMs, id descending",
        response=sch.VM,
        query=filters,
        paginated=True,
    )
    add(table, "GET", vm, get_vm, "One VM (deleted too)", response=sch.VM)
    add(table, "POST", f"{vm}/start", start_vm, "Queue StartVm", response=JOB_SCHEMA)
    add(table, "POST", f"{vm}/stop", stop_vm, "Queue StopVm", response=JOB_SCHEMA)
    extend_body = {
        "type": "object",
        "required": ["days"],
        "properties": {
            "days": {"type": "integer", "minimum": 1, "maximum": 365},
            "reason": TEXT_SCHEMA,
            "reference": f.text_schema(MAX_REFERENCE, nullable=True),
        },
    }
    add(
        table,
        "PUT",
        f"{vm}/extend",
        extend,
        "Extend paid time by whole days; a repeated `reference` extends nothing again (409 "
        "when it comes with other days or another reason)",
        request=extend_body,
        response=NULL,
    )
    add(
        table,
        "GET",
        f"{vm}/history",
        history,
        "VM history, newest first",
        response=sch.HISTORY,
        paginated=True,
    )
    add(
        table,
        "GET",
        vm + r"/history/{history_id:\d+}",
        history_entry,
        "One history entry",
        response=sch.HISTORY,
    )
