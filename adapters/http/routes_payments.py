"""VM payment routes (api.md §6.6): renew (GET, and POST with Idempotency-Key), list, get."""

from __future__ import annotations

import hashlib

from aiohttp import web

from adapters.http.auth import VerifiedKey, authenticated, authenticated_read, verified
from adapters.http.bounds import UINT_SCHEMA
from adapters.http.context import services
from adapters.http.envelope import data_response, parse_page
from adapters.http.openapi import QueryParam, RouteTable
from adapters.http.views_input import IDEMPOTENCY_PARAM, idempotency_key
from adapters.http.views_payment import VM_PAYMENT_SCHEMA, vm_payment_json
from adapters.http.vm_params import (
    intervals_from,
    is_payment_id_length,
    method_from,
    optional_json_object,
    path_id,
    payment_id,
)
from app.autorenew import pay_from_wallet
from app.billing.errors import PaymentNotFound
from app.queries.vm_records import owned_vm_payment, vm_payments_in
from domain.enums import NWC, PaymentMethod
from domain.model import SubscriptionPayment, User
from domain.unreadable import Unreadable
from ports.nwc import NwcWallet
from ports.storage import UnitOfWork

_VM = r"/api/v1/vm/{id:\d+}"
#: any segment but `methods`, so the catalogue's static route wins in either registration order
PAYMENT_PATH = "/api/v1/payment/{id:(?!methods$)[^/]+}"
_METHODS = PaymentMethod.wire_names(NWC)
_RENEW_QUERY = (
    QueryParam(
        "method",
        {"type": "string", "enum": _METHODS, "default": "lightning"},
        description="unknown values and `nwc` mean lightning",
    ),
    QueryParam(
        "intervals",
        {"type": "integer", "minimum": 1, "maximum": 120, "default": 1},
        description="billing intervals to buy, 1..120 (D6)",
    ),
)
_RENEW_BODY = {
    "type": "object",
    "properties": {
        "method": {"type": "string", "enum": _METHODS},
        "intervals": {"type": "integer", "minimum": 1, "maximum": 120},
    },
    "required": [],
    "description": "optional; fields here win over the query string",
}


def request_hash(request: web.Request, body: bytes) -> bytes:
    """What "the same request" means for an Idempotency-Key: method, path, query and body."""
    digest = hashlib.sha256()
    for part in (
        request.method.encode(),
        request.rel_url.raw_path.encode(),
        request.rel_url.raw_query_string.encode(),
        body,
    ):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.digest()


@verified
async def renew_get(request: web.Request, key: VerifiedKey) -> web.StreamResponse:
    """A payment for `intervals` of the VM's subscription (reused while pending, D10).

    Ownership is checked by the caller's key inside the renewal's unit of work (no user
    look-up first, issue 10); the user is read only for a wallet payment or a refusal.
    """
    svc = services(request)
    method = request.query.get("method")
    try:
        if method == NWC and svc.nwc_wallet is not None:
            # it may pay from the user's wallet: a replayed GET must not pay again (D26)
            await key.use_once()
        vm_id = path_id(request)
        payment = await svc.billing.renew(
            user_id=None,
            owner_key=key.pubkey,
            vm_id=vm_id,
            method=method_from(method),
            intervals=intervals_from(request.query.get("intervals")),
            before_credit=key.use_once,  # a replayed GET must not spend the balance again
        )
    except Exception:
        await key.user()  # a new key's user is created first on every authenticated route
        raise
    if not payment.is_paid and method == NWC and svc.nwc_wallet is not None:
        user = await key.user()
        if _pays_from_wallet(method, user, svc.nwc_wallet):
            await pay_from_wallet(svc.nwc_wallet, user.nwc_connection_string, payment)
    return data_response(vm_payment_json(payment, vm_id))


def _pays_from_wallet(method: str | None, user: User, wallet: NwcWallet | None) -> bool:
    """`method=nwc` with a connected wallet: the server pays the Lightning invoice from it
    (§10.2 step 6); without a wallet string `nwc` is plain Lightning, as in the reference. A
    string that cannot be decrypted counts as connected: the user asked for their wallet, so
    they are told it cannot be read (`pay_from_wallet`, 422) rather than left waiting."""
    if method != NWC or wallet is None:
        return False
    found = user.nwc_connection_string
    return isinstance(found, Unreadable) or bool((found or "").strip())


@authenticated
async def renew_post(request: web.Request, user: User) -> web.StreamResponse:
    """The POST variant (D11): the same, and with `Idempotency-Key` the same key and request
    give the same payment while the same key with another request is a 409."""
    vm_id = path_id(request)
    body = await optional_json_object(request)
    method = method_from(body.get("method", request.query.get("method")))
    intervals = intervals_from(body.get("intervals", request.query.get("intervals")))
    svc = services(request)
    key = idempotency_key(request)
    payment: SubscriptionPayment
    if key is None:
        payment = await svc.billing.renew(
            user_id=user.id,
            vm_id=vm_id,
            method=method,
            intervals=intervals,
        )
    else:
        payment = await svc.billing.renew_idempotent(
            user_id=user.id,
            idempotency_key=key,
            request_body_hash=request_hash(request, await request.read()),
            vm_id=vm_id,
            method=method,
            intervals=intervals,
        )
    return data_response(vm_payment_json(payment, vm_id))


@authenticated_read
async def vm_payments(request: web.Request, user: User, uow: UnitOfWork) -> web.StreamResponse:
    """Every payment of the VM's subscription, newest first; a plain list (§6.6, §12.2)."""
    vm_id = path_id(request)
    page = parse_page(request.query, max_limit=None)
    found = await vm_payments_in(uow, user.id, vm_id, page.limit, page.offset)
    return data_response([vm_payment_json(p, vm_id) for p in found])


async def owned_payment(
    uow: UnitOfWork, user: User, raw_id: str
) -> tuple[SubscriptionPayment, int]:
    """The caller's VM payment and its VM id; unknown, another's or not a VM's: 404."""
    pid = payment_id(raw_id)
    if not is_payment_id_length(pid):
        raise PaymentNotFound("Payment not found")
    return await owned_vm_payment(uow, user.id, pid)


@authenticated_read
async def get_payment(request: web.Request, user: User, uow: UnitOfWork) -> web.StreamResponse:
    """The polling endpoint: clients read `is_paid` every 2–5 s."""
    payment, vm_id = await owned_payment(uow, user, request.match_info["id"])
    return data_response(vm_payment_json(payment, vm_id))


def add_payment_routes(table: RouteTable) -> None:
    """Register renew (GET, POST), the VM's payments and `GET /api/v1/payment/{id}`.

    `GET /api/v1/payment/methods` belongs to the catalogue routes and must be registered
    before this table's `/api/v1/payment/{id}`.
    """
    tags = ("payments",)
    table.add(
        "GET",
        f"{_VM}/renew",
        renew_get,
        summary="A renewal payment for the VM",
        query=_RENEW_QUERY,
        response=VM_PAYMENT_SCHEMA,
        tags=tags,
    )
    table.add(
        "POST",
        f"{_VM}/renew",
        renew_post,
        summary="A renewal payment; honours an Idempotency-Key header (D11)",
        query=(*_RENEW_QUERY, IDEMPOTENCY_PARAM),
        request=_RENEW_BODY,
        response=VM_PAYMENT_SCHEMA,
        tags=tags,
    )
    table.add(
        "GET",
        f"{_VM}/payments",
        vm_payments,
        summary="The VM's payments, newest first (plain list, limit not clamped)",
        query=(
            QueryParam("limit", {**UINT_SCHEMA, "default": 50}),
            QueryParam("offset", {**UINT_SCHEMA, "default": 0}),
        ),
        response={"type": "array", "items": VM_PAYMENT_SCHEMA},
        tags=tags,
    )
    table.add(
        "GET",
        PAYMENT_PATH,
        get_payment,
        summary="One of the caller's VM payments (hex id)",
        response=VM_PAYMENT_SCHEMA,
        tags=tags,
    )
