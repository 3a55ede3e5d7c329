"""Stripe webhook deliveries: `Stripe-Signature` HMAC and window; Checkout/PaymentIntent events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from adapters.fiat.signatures import (
    SCHEME,
    SignedWebhook,
    any_matches,
    check_fresh,
    from_unix,
    header,
    hmac_hex,
    json_object,
)
from domain.enums import PaymentMethod
from ports.payment_rail import WebhookEvent, WebhookPayloadInvalid, WebhookSignatureInvalid

STRIPE_SIGNATURE_HEADER: Final = "Stripe-Signature"
#: Stripe's own libraries refuse events signed more than five minutes away from now.
STRIPE_DEFAULT_TOLERANCE_S: Final = 300
#: a Checkout Session was completed; it is paid when its `payment_status` is `paid`.
SESSION_COMPLETED: Final = "checkout.session.completed"
#: a delayed payment method (a bank debit) finally paid the session.
SESSION_ASYNC_SUCCEEDED: Final = "checkout.session.async_payment_succeeded"
#: a bare PaymentIntent succeeded (payments created before Checkout Sessions).
INTENT_SUCCEEDED: Final = "payment_intent.succeeded"


def verify_stripe_signature(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    now: datetime | None,
    tolerance_s: int | None = STRIPE_DEFAULT_TOLERANCE_S,
) -> None:
    """Accept the delivery if any `v1` of `Stripe-Signature: t=…,v1=…` is
    hex(HMAC-SHA256(secret, t + "." + raw body)) and `t` is within `tolerance_s` of `now`.

    The tolerance (default 300 s, as Stripe's libraries) is stricter than the reference,
    which had none; `tolerance_s=None` turns it off. Raises `WebhookSignatureInvalid`.
    """
    if not secret:
        raise WebhookSignatureInvalid("No Stripe webhook secret configured")
    signature = header(headers, STRIPE_SIGNATURE_HEADER)
    if signature is None:
        raise WebhookSignatureInvalid("Missing Stripe-Signature header")
    timestamps: list[str] = []
    candidates: list[str] = []
    for item in signature.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key.strip() == "t":
            timestamps.append(value.strip())
        elif key.strip() == SCHEME:
            candidates.append(value)
    if not timestamps:
        raise WebhookSignatureInvalid("Missing timestamp in signature")
    if len(timestamps) > 1:
        raise WebhookSignatureInvalid("More than one timestamp in signature")
    timestamp = timestamps[0]
    if not timestamp.isascii() or not timestamp.isdigit():
        raise WebhookSignatureInvalid("Stripe-Signature timestamp is not a Unix timestamp")
    if not candidates:
        raise WebhookSignatureInvalid("No v1 signature in Stripe-Signature")
    if tolerance_s is not None:
        check_fresh(from_unix(int(timestamp), STRIPE_SIGNATURE_HEADER), now, tolerance_s)
    expected = hmac_hex(secret, f"{timestamp}.".encode("ascii") + body)
    if not any_matches(expected, candidates):
        raise WebhookSignatureInvalid("Invalid signature")


def parse_stripe_event(body: bytes) -> tuple[str, str | None]:
    """`(type, payment intent id)` of a verified Stripe event `{id, type, data: {object}}`.

    The id is `data.object.id` when the object is a PaymentIntent (its `object` field says
    so, or the event type starts with `payment_intent.`), else None. Raises
    `WebhookPayloadInvalid`.
    """
    kind, obj = _data_object(body)
    is_intent = obj.get("object") == "payment_intent" or (
        "object" not in obj and kind.startswith("payment_intent.")
    )
    if not is_intent:
        return kind, None
    intent_id = obj.get("id")
    if not isinstance(intent_id, str) or not intent_id:
        raise WebhookPayloadInvalid("Stripe payment_intent event has no data.object.id")
    return kind, intent_id


def _data_object(body: bytes) -> tuple[str, dict[str, Any]]:
    document = json_object(body, "Stripe")
    kind = document.get("type")
    if not isinstance(kind, str) or not kind:
        raise WebhookPayloadInvalid("Stripe event has no type")
    data = document.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise WebhookPayloadInvalid("Stripe event has no data.object")
    return kind, obj


def stripe_event(body: bytes) -> WebhookEvent:
    """The event of a verified Stripe body: `checkout.session.completed` with
    `payment_status: paid` (or `checkout.session.async_payment_succeeded`) completes the
    session `data.object.id`; `payment_intent.succeeded` completes the intent (payments made
    before Checkout); anything else is reported and ignored."""
    kind, obj = _data_object(body)
    if kind.startswith("checkout.session."):
        session_id = obj.get("id")
        if not isinstance(session_id, str) or not session_id:
            raise WebhookPayloadInvalid("Stripe checkout.session event has no data.object.id")
        paid = kind == SESSION_ASYNC_SUCCEEDED or (
            kind == SESSION_COMPLETED and obj.get("payment_status") == "paid"
        )
        return WebhookEvent(kind=kind, external_id=session_id, completes=paid)
    _, intent_id = parse_stripe_event(body)
    return WebhookEvent(
        kind=kind, external_id=intent_id, completes=kind == INTENT_SUCCEEDED and bool(intent_id)
    )


class StripeWebhook(SignedWebhook):
    """The Stripe `WebhookVerifier`."""

    method = PaymentMethod.STRIPE
    default_tolerance_s: int | None = STRIPE_DEFAULT_TOLERANCE_S

    def __init__(self) -> None:
        super().__init__(verify_stripe_signature, stripe_event)
