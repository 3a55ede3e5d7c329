"""VM upgrade routes (api.md §6.8, §8.4 with D7/D8): the quote and the Upgrade payment."""

from __future__ import annotations

from typing import TypedDict

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


class _UpgradeArgs(TypedDict):
    """What both upgrade routes pass on: who, which VM, the new spec and the payment method."""

    user_id: int
    vm_id: int
    cfg: UpgradeConfig
    method: PaymentMethod


async def _upgrade_args(request: web.Request, user: User) -> _UpgradeArgs:
    """`{cpu?, memory?, disk?}` (bytes); omitted or null fields keep the current value."""
    body = await json_object(request)
    cfg = UpgradeConfig(
        new_cpu=optional_int(body, "cpu", maximum=_U16),
        new_memory=optional_int(body, "memory"),
        new_disk=optional_int(body, "disk"),
    )
    return _UpgradeArgs(
        user_id=user.id, vm_id=path_id(request), cfg=cfg, method=query_method(request.query)
    )


@authenticated
async def quote(request: web.Request, user: User) -> web.StreamResponse:
    """What the upgrade costs now; downgrades and specs outside the pricing are a 400. A
    quote by Lightning where Lightning is off is refused (422) as its payment would be."""
    args = await _upgrade_args(request, user)
    svc = services(request)
    svc.rails.refuse_lightning(args["method"])
    result = await svc.billing.quote_upgrade(**args)
    return data_response(upgrade_quote_json(result))


@authenticated
async def upgrade(request: web.Request, user: User) -> web.StreamResponse:
    """A new Upgrade payment for the quoted difference (never reused; no tax or fee)."""
    args = await _upgrade_args(request, user)
    payment = await services(request).billing.create_upgrade_payment(**args)
    return data_response(vm_payment_json(payment, args["vm_id"]))


def add_upgrade_routes(table: RouteTable) -> None:
    """Register the quote before the payment route."""
    for path, handler, summary, response in (
        ("upgrade/quote", quote, "Quote an upgrade of the VM", UPGRADE_QUOTE_SCHEMA),
        ("upgrade", upgrade, "Create the upgrade's payment", VM_PAYMENT_SCHEMA),
    ):
        table.add(
            "POST",
            f"{_VM}/{path}",
            handler,
            summary=summary,
            query=[_METHOD],
            request=s.UPGRADE_REQUEST,
            response=response,
            tags=("upgrades",),
        )
