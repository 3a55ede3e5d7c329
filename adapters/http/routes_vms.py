"""User VM routes (api.md §6.4–6.5): list, order, get, patch, actions, history, time-series."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from aiohttp import web

from adapters.http import vm_schemas as s
from adapters.http.auth import (
    Handler,
    VerifiedKey,
    authenticated,
    authenticated_read,
    verified_read,
)
from adapters.http.bounds import ID_MIN, UINT_SCHEMA, UnknownId
from adapters.http.client_limit import order_rate_limited, too_many, user_wait_seconds
from adapters.http.context import services
from adapters.http.envelope import data_response, parse_page
from adapters.http.openapi import QueryParam, RouteTable
from adapters.http.views_metrics import time_series_json
from adapters.http.views_vm import (
    history_json,
    vm_status_json,
)
from adapters.http.vm_params import (
    disk_interface,
    disk_type,
    json_object,
    optional_bool,
    optional_int,
    optional_json_object,
    optional_str,
    path_id,
    ref_code,
    required_int,
)
from app.billing.errors import VmNotFound
from app.billing.ordering import OrderTerms
from app.queries.vm_records import vm_history_in
from app.queries.vms import VmStatus, owned_vm_status_by_key_in, user_vm_statuses_in
from app.services import Services
from app.vm_actions import ACTIONS, VmPatch, patch_vm, run_action
from domain.model import User, Vm
from ports.storage import UnitOfWork

_VM = r"/api/v1/vm/{id:\d+}"
_U16 = 2**16 - 1


def _render(
    request: web.Request, statuses: Iterable[VmStatus], now: datetime | None = None
) -> list[dict[str, Any]]:
    """ApiVmStatus of each; `now` (for rows that are missing) read from the clock unless the
    caller already has it (the time the request was authenticated at)."""
    if now is None:
        now = services(request).clock.now()
    return [vm_status_json(s, now) for s in statuses]


async def status_of(request: web.Request, vm: Vm) -> dict[str, Any]:
    """ApiVmStatus of the caller's VM; `status` from the worker's state cache when there is one."""
    svc = services(request)
    status = await svc.account.vm_status(vm.user_id, vm.id)
    [out] = _render(request, [status])
    return out


@authenticated_read
async def list_vms(request: web.Request, user: User, uow: UnitOfWork) -> web.StreamResponse:
    statuses = await user_vm_statuses_in(uow, services(request).vm_states, user.id)
    return data_response(_render(request, statuses))


def _order_terms(body: dict[str, Any], svc: Services, user: User) -> OrderTerms:
    """The terms both order routes pass on: image, key, referral and the account's limits."""
    return OrderTerms(
        user_id=user.id,
        image_id=required_int(body, "image_id", minimum=ID_MIN),
        ssh_key_id=required_int(body, "ssh_key_id", minimum=ID_MIN),
        ref_code=ref_code(body),
        require_verified_email=svc.require_verified_email,
        max_unpaid=svc.max_unpaid_vms,
        unpaid_room=svc.unpaid_room,
        bitcoin_payable=not svc.rails.lightning_off,
    )


@order_rate_limited
@authenticated
async def order_standard(request: web.Request, user: User) -> web.StreamResponse:
    body = await json_object(request)
    svc = services(request)
    vm = await svc.account.order_vm(
        template_id=required_int(body, "template_id", minimum=ID_MIN),
        terms=_order_terms(body, svc, user),
    )
    return data_response(await status_of(request, vm))


@order_rate_limited
@authenticated
async def order_custom(request: web.Request, user: User) -> web.StreamResponse:
    body = await json_object(request)
    svc = services(request)
    vm = await svc.account.order_custom_vm(
        pricing_id=required_int(body, "pricing_id", minimum=ID_MIN),
        cpu=required_int(body, "cpu", maximum=_U16),
        memory=required_int(body, "memory"),
        disk=required_int(body, "disk"),
        disk_type=disk_type(body.get("disk_type")),
        disk_interface=disk_interface(body.get("disk_interface")),
        terms=_order_terms(body, svc, user),
    )
    return data_response(await status_of(request, vm))


@verified_read
async def get_vm(request: web.Request, key: VerifiedKey, uow: UnitOfWork) -> web.StreamResponse:
    try:
        vm_id = path_id(request)
    except UnknownId:
        await key.user(uow)  # a new key's user is still created, as by every authenticated route
        raise
    status = await owned_vm_status_by_key_in(uow, services(request).vm_states, key.pubkey, vm_id)
    if status is None:  # not the caller's VM, or a new key: its user is created as before
        await key.user(uow)
        raise VmNotFound("VM not found")
    [out] = _render(request, [status], key.now)
    return data_response(out)


@authenticated
async def patch(request: web.Request, user: User) -> web.StreamResponse:
    body = await json_object(request)
    change = VmPatch(
        ssh_key_id=optional_int(body, "ssh_key_id", minimum=ID_MIN),
        reverse_dns=optional_str(body, "reverse_dns"),
        set_reverse_dns="reverse_dns" in body,
        auto_renewal_enabled=optional_bool(body, "auto_renewal_enabled"),
    )
    await patch_vm(services(request), user, path_id(request), change)
    return data_response(None)


def _action_handler(action: str) -> Handler:
    """PATCH …/{action}: start/stop/restart ignore any body; re-install reads `image_id`.

    Each is a synchronous hypervisor call (re-install rebuilds the disk), so the user's
    `vm-action-rate` bucket is drawn from first: an empty one is a 429 with no host call.
    """

    @authenticated
    async def handler(request: web.Request, user: User) -> web.StreamResponse:
        svc = services(request)
        seconds = await user_wait_seconds(svc.vm_action_limiter, user.id)
        if seconds:
            return too_many(seconds, {"error": f"Too many VM actions: try again in {seconds} s"})
        image_id = None
        if action == "re-install":
            image_id = optional_int(await optional_json_object(request), "image_id", minimum=ID_MIN)
        await run_action(svc, user, path_id(request), action, image_id)
        return data_response(None)

    handler.__name__ = f"vm_{action.replace('-', '_')}"
    return handler


@authenticated_read
async def history(request: web.Request, user: User, uow: UnitOfWork) -> web.StreamResponse:
    """Newest first; paged only when both `limit` and `offset` are given (§6.5)."""
    paged = "limit" in request.query and "offset" in request.query
    page = parse_page(request.query, max_limit=None) if paged else None
    found = await vm_history_in(
        uow,
        user.id,
        path_id(request),
        page.limit if page is not None else None,
        page.offset if page is not None else 0,
    )
    return data_response([history_json(e, found.owner_id) for e in found.entries])


@authenticated
async def time_series(request: web.Request, user: User) -> web.StreamResponse:
    """The owned VM's metrics of the last hour, read from its host (`[]` when it has none)."""
    svc = services(request)
    points = await svc.account.vm_time_series(path_id(request), user.id)
    return data_response([time_series_json(p) for p in points])


def add_vm_routes(table: RouteTable) -> None:
    """Register the VM routes, static paths before `{id}` ones."""
    tags = ("vm",)
    many = {"type": "array", "items": s.VM_STATUS}
    table.add(
        "GET",
        "/api/v1/vm",
        list_vms,
        summary="The caller's VMs (not deleted)",
        response=many,
        tags=tags,
    )
    table.add(
        "POST",
        "/api/v1/vm",
        order_standard,
        summary="Order a VM on a standard template",
        request=s.CREATE_VM,
        response=s.VM_STATUS,
        tags=tags,
    )
    table.add(
        "POST",
        "/api/v1/vm/custom-template",
        order_custom,
        summary="Order a VM with a custom spec",
        request=s.CREATE_CUSTOM_VM,
        response=s.VM_STATUS,
        tags=tags,
    )
    table.add(
        "GET", _VM, get_vm, summary="One of the caller's VMs", response=s.VM_STATUS, tags=tags
    )
    table.add(
        "PATCH",
        _VM,
        patch,
        summary="Change SSH key, reverse DNS or auto-renewal",
        request=s.PATCH_VM,
        response=s.NULL,
        tags=tags,
    )
    for action in ACTIONS:
        table.add(
            "PATCH",
            f"{_VM}/{action}",
            _action_handler(action),
            summary=f"{action.capitalize()} the VM on its host now",
            request=s.REINSTALL if action == "re-install" else None,
            response=s.NULL,
            tags=tags,
        )
    table.add(
        "GET",
        f"{_VM}/history",
        history,
        summary="The VM's history, newest first",
        response={"type": "array", "items": s.VM_HISTORY},
        query=[
            QueryParam("limit", UINT_SCHEMA, description="paged only with both limit and offset"),
            QueryParam("offset", UINT_SCHEMA),
        ],
        tags=tags,
    )
    table.add(
        "GET",
        f"{_VM}/time-series",
        time_series,
        summary="Metrics of the last hour from the VM's host, oldest first",
        response={"type": "array", "items": s.TIME_SERIES},
        tags=tags,
    )
