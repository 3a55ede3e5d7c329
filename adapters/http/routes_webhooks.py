"""Provider webhooks (api.md §6.11, lifecycle.md §7.5, D14): one route for every rail."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web

from adapters.http.auth import AUTHENTICATOR
from adapters.http.context import services
from adapters.http.envelope import HttpError
from adapters.http.openapi import RouteTable
from app.billing.errors import PaymentNotFound
from domain.enums import PaymentMethod
from ports.payment_rail import (
    WebhookDelivery,
    WebhookEvent,
    WebhookSignatureInvalid,
    WebhookVerifier,
)

log = logging.getLogger("lnvps.http.webhooks")

#: a tolerance that was never given (the verifier's own default applies)
_DEFAULT = -1


class WebhookSecrets:
    """Signing secrets of the providers' webhooks, by method, and their timestamp windows.

    Keywords are wire names: `revolut="…"` sets Revolut's secret, `revolut_tolerance_s=900`
    its window (None: no check, as in the reference, which let a captured delivery replay).
    A method without a secret here uses the payment-method configs' `webhook_secret` (where
    the reference stores Revolut's), else its webhook is refused.
    """

    def __init__(
        self,
        secrets: Mapping[PaymentMethod, str] | None = None,
        tolerances: Mapping[PaymentMethod, int | None] | None = None,
        **by_wire_name: str | int | None,
    ) -> None:
        self._secrets = {m: s for m, s in (secrets or {}).items() if s}
        self._tolerances = dict(tolerances or {})
        for key, value in by_wire_name.items():
            name, is_tolerance, _ = key.partition("_tolerance_s")
            method = PaymentMethod.parse(name if is_tolerance else key)
            if is_tolerance:
                self._tolerances[method] = value if isinstance(value, int) else None
            elif isinstance(value, str) and value:
                self._secrets[method] = value

    def __repr__(self) -> str:
        return f"WebhookSecrets(methods={sorted(m.api_name for m in self._secrets)})"

    def secret_for(self, method: PaymentMethod) -> str | None:
        return self._secrets.get(method)

    def tolerance_for(self, method: PaymentMethod, default: int | None) -> int | None:
        return self._tolerances.get(method, default)


#: The composition root attaches the secrets here.
WEBHOOK_SECRETS = web.AppKey("lnvps.webhook_secrets", WebhookSecrets)


async def _secrets(request: web.Request, method: PaymentMethod) -> list[str]:
    configured = request.config_dict.get(WEBHOOK_SECRETS)
    from_settings = None if configured is None else configured.secret_for(method)
    return await services(request).billing.webhook_signing_secrets(method, from_settings)


async def _verified_event(
    request: web.Request, method: PaymentMethod, verifier: WebhookVerifier
) -> WebhookEvent:
    """The event once its signature checks out with a secret; 401, nothing changed, otherwise
    (D14). A correctly signed body that is not the expected JSON is a 400.

    The providers sign with real time, so the timestamp is judged by the clock that judges
    NIP-98 events (the real one even when a dev server's business clock was moved).
    """
    body = await request.read()
    secrets = await _secrets(request, method)
    name = method.display_name
    if not secrets:
        log.error("%s webhook received but no signing secret is configured", name)
        raise HttpError(503, f"{name} webhooks are not configured")
    configured = request.config_dict.get(WEBHOOK_SECRETS) or WebhookSecrets()
    tolerance = configured.tolerance_for(method, verifier.default_tolerance_s)
    now = request.config_dict[AUTHENTICATOR].clock.now()
    delivery = WebhookDelivery(headers=request.headers, body=body, now=now, tolerance_s=tolerance)
    reasons = []
    for secret in secrets:
        try:
            return verifier.verify(delivery, secret)
        except WebhookSignatureInvalid as err:
            reasons.append(err.reason)
    log.warning("%s webhook refused: %s", name, "; ".join(reasons))
    raise HttpError(401, "Invalid webhook signature")


async def _complete(
    request: web.Request, method: PaymentMethod, external_id: str | None
) -> web.Response:
    name = method.display_name
    if not external_id:
        raise HttpError(400, f"{name} event without an order id")
    svc = services(request)
    try:
        report = await svc.billing.complete_card_payment(
            method=method,
            external_id=external_id,
        )
    except PaymentNotFound:
        log.warning("%s webhook for unknown payment %r", name, external_id)
        raise
    if report is not None:
        log.info(
            "%s webhook: payment %s completed=%s", name, report.payment_id.hex(), report.completed
        )
    return web.Response(status=200)


def _method_of(request: web.Request) -> tuple[PaymentMethod, WebhookVerifier]:
    """The rail named in the path and its verifier; 404 for a rail without webhooks."""
    wire_name = request.match_info["rail"]
    for method in PaymentMethod:
        if method.api_name == wire_name:
            verifier = services(request).rails.webhook(method)
            if verifier is not None:
                return method, verifier
    raise HttpError(404, "No webhook for this payment method")


async def rail_webhook(request: web.Request) -> web.StreamResponse:
    """A provider event: the rail's verifier checks the signature and says whether the event
    means paid (Revolut ORDER_COMPLETED, Stripe checkout.session.completed with
    payment_status paid, …); that completes the payment of its order id once, after the
    provider confirms it. A dispute or refund (Stripe charge.dispute.created/closed,
    charge.refunded; Revolut DISPUTE_*) of one of our payments is recorded and told to the
    admins once, changing nothing else; one of no payment of ours is logged. Other events
    are logged and answered 200."""
    method, verifier = _method_of(request)
    event = await _verified_event(request, method, verifier)
    if event.money_back is not None:
        await services(request).billing.report_money_back(method=method, back=event.money_back)
        return web.Response(status=200)
    if not event.completes:
        log.info("%s webhook event %r ignored", method.display_name, event.kind)
        return web.Response(status=200)
    return await _complete(request, method, event.external_id)


_EVENT = {"type": "object", "description": "the provider's event JSON, signed"}


def add_webhook_routes(table: RouteTable) -> None:
    """Register the POST webhook of every rail, `/api/v1/webhook/{rail}` by wire name (the
    reference's `/revolut` and `/stripe` among them): 200 empty when handled or ignored;
    401 bad signature, 404 unknown payment or rail, 400 malformed event, 503 no secret or the
    provider down while its word is asked."""
    table.add(
        "POST",
        "/api/v1/webhook/{rail}",
        rail_webhook,
        summary="A payment rail's provider events (signed; e.g. revolut, stripe)",
        request=_EVENT,
        response={"type": "string", "maxLength": 0},
        enveloped=False,
        tags=("webhooks",),
    )
