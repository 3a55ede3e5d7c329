"""VM upgrade routes (api.md §6.8, §8.4 with D7/D8): the quote and the Upgrade payment."""

from __future__ import annotations

from aiohttp import web

from adapters.http import vm_schemas as s
from adapters.http.auth import authenticated
from adapters.http.context import services
from adapters.http.envelope import data_response
from adapters.http.openapi import QueryParam, RouteTable
from adapters.http.views_payment import (
    UPGRADE_QUOTE_SCHEMA,
    VM_PAYMENT_SCHEMA,
    upgrade_quote_json,
    vm_payment_json,
)
from adapters.http.vm_params import json_object, optional_int, path_id, query_method
from domain.enums import PaymentMethod
from domain.model import User
from domain.upgrade import UpgradeConfig

_VM = r"/api/v1/vm/{id:\d+}"
_U16 = 2**16 - 1
_METHOD = QueryParam(
    "method",
    {"type": "string", "enum": PaymentMethod.wire_names(), "default": "lightning"},
    description="unknown values mean lightning",
)


async def _config(request: web.Request) -> UpgradeConfig:
    """`{cpu?, memory?, disk?}` (bytes); omitted or null fields keep the current value."""
    body = await json_object(request)
    return UpgradeConfig(
        new_cpu=optional_int(body, "cpu", maximum=_U16),
        new_memory=optional_int(body, "memory"),
        new_disk=optional_int(body, "disk"),
    )


@authenticated
async def quote(request: web.Request, user: User) -> web.StreamResponse:
    """What the upgrade costs now; downgrades and specs outside the pricing are a 400."""
    cfg = await _config(request)
    svc = services(request)
    result = await svc.billing.quote_upgrade(
        user_id=user.id,
        vm_id=path_id(request),
        cfg=cfg,
        method=query_method(request.query),
    )
    return data_response(upgrade_quote_json(result))


@authenticated
async def upgrade(request: web.Request, user: User) -> web.StreamResponse:
    """A new Upgrade payment for the quoted difference (never reused; no tax or fee)."""
    cfg = await _config(request)
    svc = services(request)
    vm_id = path_id(request)
    payment = await svc.billing.create_upgrade_payment(
        user_id=user.id,
        vm_id=vm_id,
        cfg=cfg,
        method=query_method(request.query),
    )
    return data_response(vm_payment_json(payment, vm_id))


def add_upgrade_routes(table: RouteTable) -> None:
    """Register the quote before the payment route."""
    tags = ("upgrades",)
    table.add(
        "POST",
        f"{_VM}/upgrade/quote",
        quote,
        summary="Quote an upgrade of the VM",
        query=[_METHOD],
        request=s.UPGRADE_REQUEST,
        response=UPGRADE_QUOTE_SCHEMA,
        tags=tags,
    )
    table.add(
        "POST",
        f"{_VM}/upgrade",
        upgrade,
        summary="Create the upgrade's payment",
        query=[_METHOD],
        request=s.UPGRADE_REQUEST,
        response=VM_PAYMENT_SCHEMA,
        tags=tags,
    )
