"""Builds the LNVPS v1 user API application: middleware, CORS, NIP-98 auth and every route."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiohttp import web

from adapters.http.auth import AuthBinding, setup_auth
from adapters.http.context import SERVICES
from adapters.http.cors import setup_cors
from adapters.http.errors import error_middleware
from adapters.http.openapi import RouteTable
from adapters.http.routes_account import add_account_routes
from adapters.http.routes_catalogue import add_catalogue_routes
from adapters.http.routes_invoice import add_invoice_routes
from adapters.http.routes_lnurl import add_lnurl_routes
from adapters.http.routes_payments import add_payment_routes
from adapters.http.routes_subscriptions import add_subscription_routes
from adapters.http.routes_upgrades import add_upgrade_routes
from adapters.http.routes_vms import add_vm_routes
from adapters.http.routes_webhooks import WEBHOOK_SECRETS, WebhookSecrets, add_webhook_routes
from app.services import Services
from ports.clock import Clock

RouteAdder = Callable[[RouteTable], None]

#: in this order: the catalogue's static paths (`/api/v1/vm/templates`,
#: `/api/v1/payment/methods`) come before the `{id}` routes of VMs and payments (api.md §1).
USER_API_ROUTES: Sequence[RouteAdder] = (
    add_catalogue_routes,
    add_account_routes,
    add_vm_routes,
    add_upgrade_routes,
    add_payment_routes,
    add_invoice_routes,
    add_lnurl_routes,
    add_subscription_routes,
    add_webhook_routes,
)


def build_user_app(
    services: Services,
    routes: Sequence[RouteAdder] = USER_API_ROUTES,
    webhook_secrets: WebhookSecrets | None = None,
    auth_clock: Clock | None = None,
    auth_binding: AuthBinding | None = None,
    cors_origins: Sequence[str] | None = None,
) -> web.Application:
    """The user API over `services`; `/openapi.json` documents exactly the served routes.

    Without `webhook_secrets`, webhooks look for a `webhook_secret` in the enabled payment
    method configs (where the reference keeps Revolut's), else answer 503. `auth_clock`
    judges NIP-98 timestamps (default: the business clock); a dev server whose business
    clock was moved forward passes the real clock, since clients sign with real time.
    `auth_binding` holds D26's public URL and replay guard (default: any host, in-process).
    `cors_origins` restricts CORS to those origins (see `adapters.http.cors`).
    """
    app = web.Application(middlewares=[error_middleware], client_max_size=1024**2)
    setup_cors(app, cors_origins)
    binding = auth_binding or AuthBinding()
    setup_auth(app, binding.authenticator(services.uow_factory, auth_clock or services.clock))
    app[SERVICES] = services
    if webhook_secrets is not None:
        app[WEBHOOK_SECRETS] = webhook_secrets
    table = RouteTable()
    for add in routes:
        add(table)
    table.add_openapi_route()
    table.register(app)
    return app
