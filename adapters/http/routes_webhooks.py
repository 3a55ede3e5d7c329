"""Revolut and Stripe webhooks (api.md §6.11, lifecycle.md §7.5, D14): verify, then complete."""

from __future__ import annotations

import json
import logging

import attrs
from aiohttp import web

from adapters.http.auth import AUTHENTICATOR
from adapters.http.context import services
from adapters.http.envelope import HttpError
from adapters.http.openapi import RouteTable
from app.billing.completion import complete_card_payment
from app.billing.errors import PaymentNotFound
from app.webhook_signatures import (
    REVOLUT_DEFAULT_TOLERANCE_S,
    STRIPE_DEFAULT_TOLERANCE_S,
    WebhookSignatureInvalid,
    parse_revolut_event,
    parse_stripe_event,
    verify_revolut_signature,
    verify_stripe_signature,
)
from domain.enums import PaymentMethod

log = logging.getLogger("lnvps.http.webhooks")


@attrs.frozen(kw_only=True)
class WebhookSecrets:
    """Signing secrets of the providers' webhooks; None: use the payment-method configs'
    `webhook_secret` (where the reference stores Revolut's), else refuse the webhook."""

    revolut: str | None = attrs.field(default=None, repr=False)
    stripe: str | None = attrs.field(default=None, repr=False)
    #: seconds a signed timestamp may be off from now, either way (the providers' documented
    #: windows); None: no check, as in the reference, which let a captured delivery replay.
    revolut_tolerance_s: int | None = REVOLUT_DEFAULT_TOLERANCE_S
    stripe_tolerance_s: int | None = STRIPE_DEFAULT_TOLERANCE_S


#: The composition root attaches the secrets here.
WEBHOOK_SECRETS = web.AppKey("lnvps.webhook_secrets", WebhookSecrets)


def _config_of(raw: object) -> dict[str, object]:
    """A payment-method config as a dict (stored as a JSON object or as its text)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


async def _secrets(request: web.Request, method: PaymentMethod) -> list[str]:
    configured = request.config_dict.get(WEBHOOK_SECRETS)
    secret = None if configured is None else getattr(configured, method.api_name)
    if secret:
        return [secret]
    found: list[str] = []
    async with services(request).uow_factory() as uow:
        for row in await uow.payment_methods.list_all():
            value = _config_of(row.config).get("webhook_secret")
            if row.enabled and row.payment_method is method and isinstance(value, str) and value:
                found.append(value)
    return found


def _verify(
    request: web.Request, method: PaymentMethod, secret: str, body: bytes
) -> tuple[str, str | None]:
    """Check one secret; the (event type, provider order id) of the verified body.

    The providers sign with real time, so the timestamp is judged by the clock that judges
    NIP-98 events (the real one even when a dev server's business clock was moved).
    """
    configured = request.config_dict.get(WEBHOOK_SECRETS) or WebhookSecrets()
    now = request.config_dict[AUTHENTICATOR].clock.now()
    if method is PaymentMethod.REVOLUT:
        verify_revolut_signature(
            request.headers, body, secret, now, configured.revolut_tolerance_s)
        return parse_revolut_event(body)
    verify_stripe_signature(request.headers, body, secret, now, configured.stripe_tolerance_s)
    return parse_stripe_event(body)


async def _verified_event(request: web.Request, method: PaymentMethod) -> tuple[str, str | None]:
    """The event once its signature checks out with a secret; 401, nothing changed, otherwise
    (D14). A correctly signed body that is not the expected JSON is a 400."""
    body = await request.read()
    secrets = await _secrets(request, method)
    name = method.display_name
    if not secrets:
        log.error("%s webhook received but no signing secret is configured", name)
        raise HttpError(503, f"{name} webhooks are not configured")
    reasons = []
    for secret in secrets:
        try:
            return _verify(request, method, secret, body)
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
        report = await complete_card_payment(
            svc.uow_factory, svc.clock, svc.rails, svc.queue,
            method=method, external_id=external_id,
        )
    except PaymentNotFound:
        log.warning("%s webhook for unknown payment %r", name, external_id)
        raise
    if report is not None:
        log.info("%s webhook: payment %s completed=%s", name, report.payment_id.hex(),
                 report.completed)
    return web.Response(status=200)


async def revolut_webhook(request: web.Request) -> web.StreamResponse:
    """ORDER_COMPLETED completes the payment of `merchant_order_ext_ref` (else `order_id`);
    other events are logged and answered 200."""
    kind, external_id = await _verified_event(request, PaymentMethod.REVOLUT)
    if kind != "ORDER_COMPLETED":
        log.info("Revolut webhook event %r ignored", kind)
        return web.Response(status=200)
    return await _complete(request, PaymentMethod.REVOLUT, external_id)


async def stripe_webhook(request: web.Request) -> web.StreamResponse:
    """`payment_intent.succeeded` completes the payment of `data.object.id`."""
    kind, intent_id = await _verified_event(request, PaymentMethod.STRIPE)
    if kind != "payment_intent.succeeded":
        log.info("Stripe webhook event %r ignored", kind)
        return web.Response(status=200)
    return await _complete(request, PaymentMethod.STRIPE, intent_id)


_EVENT = {"type": "object", "description": "the provider's event JSON, signed"}


def add_webhook_routes(table: RouteTable) -> None:
    """Register the POST webhooks: 200 empty when handled or ignored; 401 bad signature,
    404 unknown payment, 400 malformed event, 503 no secret configured."""
    tags = ("webhooks",)
    table.add("POST", "/api/v1/webhook/revolut", revolut_webhook,
              summary="Revolut order events (Revolut-Signature HMAC)", request=_EVENT,
              response={"type": "string", "maxLength": 0}, enveloped=False, tags=tags)
    table.add("POST", "/api/v1/webhook/stripe", stripe_webhook,
              summary="Stripe events (Stripe-Signature HMAC)", request=_EVENT,
              response={"type": "string", "maxLength": 0}, enveloped=False, tags=tags)
