"""Admin auth (api.md §4.2): NIP-98 and user upsert, the caller's permissions, `require`."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from aiohttp import web

from adapters.http.auth import Handler, mark_authenticated, take_event, user_in, verify_request
from adapters.http.context import services
from adapters.http.envelope import HttpError
from adapters.http.errors import BUSY_STATUS, status_for
from app.admin.audit import summary_of
from app.admin.permissions import denied_message, permission_text
from domain.enums import AdminAction, AdminResource
from domain.errors import DomainError
from domain.model import User
from ports.storage import Permission, StorageBusy

log = logging.getLogger("lnvps.http.admin")
#: the admin API's base path (also `common.BASE`, which imports this module)
ADMIN_BASE = "/api/admin/v1"
#: Set on admin handlers: the permissions they need, all of them (empty: any signed-in user).
PERMISSION_MARK = "lnvps_admin_permission"


@attrs.frozen
class Admin:
    """The signed-in caller and the permissions of their unexpired role assignments."""

    user: User
    permissions: frozenset[Permission]

    def check(self, resource: AdminResource, action: AdminAction) -> None:
        """403 `Insufficient permissions for <resource>::<action>` (D19: not the reference 500)."""
        if (resource, action) not in self.permissions:
            raise HttpError(403, denied_message(resource, action))


AdminHandler = Callable[[web.Request, Admin], Awaitable[web.StreamResponse]]
_ADMIN = web.RequestKey("lnvps.admin", Admin)


async def authenticate_admin(request: web.Request, needed: tuple[Permission, ...] = ()) -> Admin:
    """NIP-98 (401/403 per §4.1), upsert the user, load the permission set once, check
    `needed` (403), and only then take a non-GET event once (D26, 401 when seen before).

    Taking the event after the permission check means a key without the route's permission
    never takes a place in the admin API's replay guard: strangers' signed requests, however
    many, cannot fill it and lock the admins out (the admin API has its own guard, so the
    user API's traffic cannot either). Its refusal is then 403 rather than 401 for a replay,
    a refusal all the same."""
    if _ADMIN not in request:
        pubkey, now = await verify_request(request, take=False)
        svc = services(request)
        async with svc.uow_factory() as uow:  # one connection for the user and permissions
            user = await user_in(request, uow, pubkey, now)
            permissions = await uow.roles.permissions_of(user.id, svc.clock.now())
        request[_ADMIN] = Admin(user, permissions)
    admin = request[_ADMIN]
    for resource, action in needed:
        admin.check(resource, action)
    await take_event(request)
    return admin


def require(
    resource: AdminResource | None,
    action: AdminAction | None = None,
    *,
    also: tuple[AdminResource, AdminAction] | None = None,
) -> Callable[[AdminHandler], Handler]:
    """Decorator: authenticate, then check `resource::action` (and `also`) before the handler.

    `require(None)` only authenticates (`GET /me/roles`); such a handler is never audited
    (signing in is no admin right: anyone with a key could fill the trail).
    """
    first = None if resource is None or action is None else (resource, action)
    return require_all(tuple(p for p in (first, also) if p is not None))


def require_all(needed: tuple[Permission, ...]) -> Callable[[AdminHandler], Handler]:
    """`require` for a list of permissions, every one needed; empty: sign-in only."""

    def wrap(handler: AdminHandler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            admin = await authenticate_admin(request, needed)
            if request.method in _READS or not needed:
                return await handler(request, admin)
            return await audited(request, admin, handler)

        setattr(wrapper, PERMISSION_MARK, needed)
        return mark_authenticated(wrapper)

    return wrap


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


#: the writes that move money or paid time (expiry edits, extends, payment completions,
#: refunds, credit adjustments and notes, prices of a subscription's items and their
#: deletion, a new subscription (its expiry and price), deleting a paid VM or subscription,
#: re-pricing the catalogue, a payment method's fees and pending invoices, a user's tax
#: status): one of them does not succeed without its audit record (`audited`), by
#: `(method, route)` under ADMIN_BASE
MONEY_ROUTES = frozenset(
    {
        ("PATCH", "/users/{id}"),
        ("POST", "/payment_methods"),
        ("PATCH", "/payment_methods/{id}"),
        ("DELETE", "/payment_methods/{id}"),
        ("PATCH", "/cost_plans/{id}"),
        ("PATCH", "/vm_templates/{id}"),
        ("PATCH", "/custom_pricing/{id}"),
        ("POST", "/ip_space/{id}/pricing"),
        ("PATCH", "/ip_space/{id}/pricing/{pricing_id}"),
        ("DELETE", "/ip_space/{id}/pricing/{pricing_id}"),
        ("DELETE", "/vms/{id}"),
        ("POST", "/subscriptions"),
        ("DELETE", "/subscriptions/{id}"),
        ("PATCH", "/subscriptions/{id}"),
        ("PATCH", "/subscription_line_items/{id}"),
        ("DELETE", "/subscription_line_items/{id}"),
        ("PUT", "/vms/{id}/extend"),
        ("POST", "/vms/{id}/payments/{payment_id}/complete"),
        ("POST", "/subscription_payments/{id}/complete"),
        ("POST", "/bank_transfers/{reference}/received"),
        ("POST", "/vms/{id}/refund"),
        ("POST", "/vms/{id}/refund/credit"),
        ("POST", "/users/{id}/credit"),
        ("POST", "/invoices/{id}/credit_notes"),
    }
)


def _moves_money(request: web.Request) -> bool:
    route = request.match_info.route.resource
    path = "" if route is None else route.canonical.removeprefix(ADMIN_BASE)
    return (request.method, path) in MONEY_ROUTES


async def audited(request: web.Request, admin: Admin, handler: AdminHandler) -> web.StreamResponse:
    """Run a write handler, then record who called it and how it ended (admin_audit).

    Only requests that passed the permission check get here, so a refusal (401/403) is never
    recorded. The record is written right after the handler, with its status: a failed
    attempt (400/404/422…) is recorded too, since trying is worth knowing about.

    A write that moves money or paid time (`MONEY_ROUTES`) does not succeed without its
    record: when the record cannot be written after it was done, the answer is 500 saying
    what was done and that it stands (the change is committed; the log has the request), so
    the admin neither takes it for done and recorded nor repeats it blindly. Any other
    write stands with its answer, the lost record logged.
    """
    try:
        response = await handler(request, admin)
    except Exception as exc:
        await _record(request, admin, _status_of(exc))
        raise
    recorded = await _record(request, admin, response.status)
    if not recorded and response.status < 400 and _moves_money(request):
        raise HttpError(
            500,
            f"{request.method} {request.path} was done (answered {response.status}) and "
            "stands, but its audit record could not be written: it is in the server log. "
            "Check the result before repeating it",
        )
    return response


def _status_of(exc: Exception) -> int:
    if isinstance(exc, HttpError):
        return exc.status
    if isinstance(exc, DomainError):
        return status_for(exc) or 500
    if isinstance(exc, web.HTTPException):
        return exc.status
    if isinstance(exc, StorageBusy):
        return BUSY_STATUS
    return 500


async def _record(request: web.Request, admin: Admin, status: int) -> bool:
    """Write the audit record; False (logged) when it could not be written.

    Never raises: a body its summary cannot be made of (nested too deep for the parser, or
    anything else going wrong) is recorded by its size alone, so the record is still written
    and `audited` still applies its rule for money routes."""
    svc = services(request)
    params = dict(request.match_info)
    rest = request.path.removeprefix(ADMIN_BASE).strip("/")
    resource = rest.split("/", 1)[0] or "?"
    resource_id = params.get("id") or next(iter(params.values()), None)
    summary: dict[str, Any] = {"params": params}
    try:
        summary = await _summary(request, params)
        await svc.admin.record_admin_change(
            user_id=admin.user.id,
            method=request.method,
            path=request.path,
            resource=resource,
            resource_id=resource_id,
            summary=summary,
            status=status,
        )
    except Exception:  # the change itself stands; `audited` decides what the caller is told
        log.exception(
            "could not record the admin change %s %s (status %s, admin user %s, summary %s)",
            request.method,
            request.path,
            status,
            admin.user.id,
            json.dumps(summary, default=str),
        )
        return False
    return True


async def _summary(request: web.Request, params: dict[str, str]) -> dict[str, Any]:
    """`summary_of` the request's body, or its path parameters and the body's size when the
    body cannot be summarised."""
    if not request.body_exists:
        return summary_of(None, params)
    raw = await request.read()
    unparsed = {"params": params, "body": {"unparsed_bytes": len(raw)}}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # nesting past the parser's stack: RecursionError
        return unparsed
    try:
        return summary_of(body, params)
    except Exception:
        log.exception("could not summarise the body of %s %s", request.method, request.path)
        return unparsed


def needed_by(handler: object) -> tuple[Permission, ...]:
    """The permissions a handler made by `require` checks; empty: sign-in only."""
    needed: tuple[Permission, ...] = getattr(handler, PERMISSION_MARK, ())
    return needed


def permission_of(handler: object) -> str | None:
    """`resource::action` a handler made by `require` checks, for the OpenAPI summary."""
    needed = needed_by(handler)
    return "` and `".join(permission_text(*p) for p in needed) or None
