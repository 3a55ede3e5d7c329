"""Builds the LNVPS v1 admin API application at `/api/admin/v1` (api.md §9, D20)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import attrs
from aiohttp import web

from adapters.http.admin.common import BASE
from adapters.http.admin.routes_audit import add_admin_audit_routes
from adapters.http.admin.routes_catalogue import add_admin_catalogue_routes
from adapters.http.admin.routes_credit import add_admin_credit_routes
from adapters.http.admin.routes_deletes import add_admin_delete_routes
from adapters.http.admin.routes_invoices import add_admin_invoice_routes
from adapters.http.admin.routes_payment_methods import add_admin_payment_method_routes
from adapters.http.admin.routes_payments import add_admin_payment_routes
from adapters.http.admin.routes_reports import add_admin_report_routes
from adapters.http.admin.routes_role_changes import add_admin_role_change_routes
from adapters.http.admin.routes_roles import add_admin_role_routes
from adapters.http.admin.routes_subscriptions import add_admin_subscription_routes
from adapters.http.admin.routes_users import add_admin_user_routes
from adapters.http.admin.routes_vm_removal import add_admin_vm_removal_routes
from adapters.http.admin.routes_vms import add_admin_vm_routes
from adapters.http.auth import AuthBinding, setup_auth
from adapters.http.context import SERVICES
from adapters.http.cors import setup_cors
from adapters.http.errors import error_middleware
from adapters.http.openapi import RouteTable
from adapters.http.routes_webhooks import WEBHOOK_SECRETS, WebhookSecrets
from app.services import Services
from ports.clock import Clock

RouteAdder = Callable[[RouteTable], None]
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def invalidate_catalogue(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A successful admin write drops the cached catalogue on every node (issue 10)."""
    response = await handler(request)
    if request.method not in _READS and response.status < 400:
        cache = request.app[SERVICES].catalogue_cache
        if cache is not None:
            await cache.invalidate()
    return response


ADMIN_API_ROUTES: Sequence[RouteAdder] = (
    add_admin_user_routes,
    add_admin_role_routes,
    add_admin_vm_routes,
    add_admin_payment_routes,
    add_admin_payment_method_routes,
    add_admin_subscription_routes,
    add_admin_catalogue_routes,
    add_admin_audit_routes,
    add_admin_role_change_routes,
    add_admin_report_routes,
    add_admin_invoice_routes,
    add_admin_vm_removal_routes,
    add_admin_delete_routes,
    add_admin_credit_routes,
)


def admin_route_table(routes: Sequence[RouteAdder] = ADMIN_API_ROUTES) -> RouteTable:
    """Every admin route plus `/api/admin/v1/openapi.json`, which documents exactly them."""
    table = RouteTable()
    for add in routes:
        add(table)
    table.add_openapi_route(f"{BASE}/openapi.json", title="LNVPS admin API")
    return table


def build_admin_app(
    services: Services,
    *,
    auth_clock: Clock | None = None,
    auth_binding: AuthBinding | None = None,
    cors_origins: Sequence[str] | None = None,
    webhook_secrets: WebhookSecrets | None = None,
) -> web.Application:
    """The admin API over `services`: the user app's middleware, CORS and NIP-98 auth, then
    RBAC per route (403 without the permission, D19). `auth_clock` judges NIP-98 timestamps
    (default: the business clock) and `auth_binding` binds events (D26), as in
    `build_user_app`, except that no client is held to a share of its replay guard: only keys
    with the route's permission take places in it (`authenticate_admin`), so strangers cannot
    fill it, and an admin's bulk script is not slowed down. It must not be the user API's
    in-process guard (the composition root gives each API its own). `webhook_secrets`: the
    user API's, so that deleting a payment-method config knows which methods the settings
    file signs (`routes_deletes`)."""
    app = web.Application(
        middlewares=[error_middleware, invalidate_catalogue], client_max_size=1024**2
    )
    setup_cors(app, cors_origins)
    binding = attrs.evolve(auth_binding or AuthBinding(), shares=None)
    setup_auth(app, binding.authenticator(services.uow_factory, auth_clock or services.clock))
    app[SERVICES] = services
    if webhook_secrets is not None:
        app[WEBHOOK_SECRETS] = webhook_secrets
    admin_route_table().register(app)
    return app
