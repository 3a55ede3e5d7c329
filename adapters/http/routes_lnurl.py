"""LNURL-pay VM top-ups (api.md §6.7, LUD-06/LUD-16): raw JSON, errors as HTTP 200.

Both endpoints are unauthenticated, so each client address draws from a token bucket (D25):
past it, 429 with `{"error": …}` (and the LUD-06 `status`/`reason`, which wallets show). A
client network may also hold only a few of a VM's live LNURL invoices (`renew_by_amount`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from adapters.http.bounds import parse_uint
from adapters.http.client_limit import client_network, too_many, wait_seconds
from adapters.http.context import services
from adapters.http.envelope import json_response
from adapters.http.openapi import QueryParam, RouteTable
from adapters.http.vm_params import path_id
from app.billing.errors import AmountOutOfRange, VmNotPaidYet
from app.billing.lnurl import LNURL_MAX_MSAT, LNURL_MIN_MSAT
from domain.errors import DomainError, InvalidInput, PricingUnavailable
from domain.unreadable import Unreadable

log = logging.getLogger("lnvps.http")

#: domain error kinds whose message a wallet is shown as the LUD-06 reason
_SHOWN = ("bad_input", "not_found", "unprocessable")

PAY_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "callback": {"type": "string"},
        "maxSendable": {"type": "integer"},
        "minSendable": {"type": "integer"},
        "tag": {"const": "payRequest"},
        "metadata": {"type": "string"},
        "allowsNostr": {"type": "null"},
        "nostrPubkey": {"type": "null"},
    },
    "required": ["callback", "maxSendable", "minSendable", "tag", "metadata"],
}
LUD06_ERROR: dict[str, Any] = {
    "type": "object",
    "properties": {"status": {"const": "ERROR"}, "reason": {"type": "string"}},
    "required": ["status", "reason"],
}
CALLBACK_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "pr": {"type": "string"},
                "routes": {"type": "array"},
                "hodl_invoice": {"type": "null"},
            },
            "required": ["pr"],
        },
        LUD06_ERROR,
    ]
}


def lnurl_error(reason: str, status: int = 200) -> web.Response:
    """LUD-06's error object (HTTP 200, as wallets expect)."""
    return json_response({"status": "ERROR", "reason": reason}, status=status)


async def rate_limited(request: web.Request) -> web.Response | None:
    """429 once the client's bucket is empty (D25), with `Retry-After`; None to go on."""
    seconds = await wait_seconds(request, services(request).lnurl_limiter)
    if not seconds:
        return None
    reason = f"Too many requests: try again in {seconds} s"
    return too_many(seconds, {"error": reason, "status": "ERROR", "reason": reason})


async def pay_request(request: web.Request) -> web.StreamResponse:
    """`/.well-known/lnurlp/{vm_id}`: the payRequest for the Lightning address `{vm_id}@host`.

    A VM never paid for gets the LUD-06 error instead (D25: LNURL only tops up), and so does
    one whose price cannot be valued now. `maxSendable` is per VM: what 120 intervals of it
    cost at the price in force, at most `LNURL_MAX_MSAT` (`lnurl_offer`)."""
    limited = await rate_limited(request)
    if limited is not None:
        return limited
    svc = services(request)
    if svc.rails.lightning_off:  # a fiat-only shop: no Lightning address to pay
        return lnurl_error("This server takes no Lightning payments")
    try:
        vm_id = path_id(request, "vm_id")  # out of range: as unknown as any missing VM
        offer = await svc.billing.lnurl_offer(vm_id)
    except (VmNotPaidYet, AmountOutOfRange, PricingUnavailable) as err:
        return lnurl_error(err.message)
    except DomainError:
        return web.Response(text="VM not found", content_type="text/plain")
    vm = offer.vm
    base = svc.public_url.rstrip("/")
    metadata = json.dumps([["text/plain", f"Extend VM {vm.id}"]], separators=(",", ":"))
    return json_response(
        {
            "callback": f"{base}/api/v1/vm/{vm.id}/renew-lnurlp",
            "maxSendable": offer.max_msat,
            "minSendable": offer.min_msat,
            "tag": "payRequest",
            "metadata": metadata,
            "allowsNostr": None,
            "nostrPubkey": None,
        }
    )


async def pay_callback(request: web.Request) -> web.StreamResponse:
    """The LUD-06 callback: an invoice for exactly `amount` msat (tax included) buying time
    for VM `{id}` (the VM id, not the subscription id the reference passed, §12.7)."""
    limited = await rate_limited(request)
    if limited is not None:
        return limited
    raw = request.query.get("amount")
    if raw is None:
        return lnurl_error("amount (millisatoshi) is required", status=400)
    try:
        amount_msat = parse_uint(raw, "amount")
    except InvalidInput as err:
        return lnurl_error(err.message, status=400)
    svc = services(request)
    try:
        payment = await svc.billing.renew_by_amount(
            vm_id=path_id(request),
            amount_msat=amount_msat,
            client=client_network(request, svc.trust_forwarded_for),
        )
    except DomainError as err:
        if err.kind in _SHOWN:
            return lnurl_error(err.message)
        log.warning("LNURL invoice for VM %s failed: %s", request.match_info["id"], err.message)
        return lnurl_error("Error generating invoice")
    if isinstance(payment.external_data, Unreadable):  # the key changed since it was made
        return lnurl_error("Error generating invoice")
    return json_response({"pr": payment.external_data, "routes": [], "hodl_invoice": None})


def add_lnurl_routes(table: RouteTable) -> None:
    """Register the root-level `/.well-known/lnurlp/{vm_id}` and its callback (no auth)."""
    tags = ("lnurl",)
    table.add(
        "GET",
        r"/.well-known/lnurlp/{vm_id:\d+}",
        pay_request,
        summary="LUD-16 payRequest for the Lightning address {vm_id}@host (raw JSON)",
        response={"oneOf": [PAY_REQUEST_SCHEMA, LUD06_ERROR]},
        enveloped=False,
        tags=tags,
        also_200=[("text/plain", {"const": "VM not found"})],
    )
    table.add(
        "GET",
        r"/api/v1/vm/{id:\d+}/renew-lnurlp",
        pay_callback,
        summary="LUD-06 callback: an invoice for `amount` msat extending the VM",
        query=[
            QueryParam(
                "amount",
                {"type": "integer", "minimum": LNURL_MIN_MSAT, "maximum": LNURL_MAX_MSAT},
                required=True,
            )
        ],
        response=CALLBACK_SCHEMA,
        enveloped=False,
        tags=tags,
        error_schema=LUD06_ERROR,
    )
