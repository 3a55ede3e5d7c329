"""Revolut webhook deliveries: Revolut-Signature HMAC, timestamp window, ORDER_COMPLETED."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

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

REVOLUT_SIGNATURE_HEADER: Final = "Revolut-Signature"
REVOLUT_TIMESTAMP_HEADER: Final = "Revolut-Request-Timestamp"
#: Revolut documents a five-minute window for `Revolut-Request-Timestamp` against replays.
REVOLUT_DEFAULT_TOLERANCE_S: Final = 300
#: the event that completes a payment.
ORDER_COMPLETED: Final = "ORDER_COMPLETED"


def verify_revolut_signature(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    now: datetime | None,
    tolerance_s: int | None = REVOLUT_DEFAULT_TOLERANCE_S,
) -> None:
    """Accept the delivery if any `v1=<hex>` item of `Revolut-Signature` is
    hex(HMAC-SHA256(secret, "v1." + Revolut-Request-Timestamp + "." + raw body)).

    The timestamp, in Unix milliseconds, must lie within `tolerance_s` seconds of `now`
    (default 300, Revolut's documented window; the reference had no check, so a captured
    delivery could be replayed forever); `tolerance_s=None` turns it off. Items of another
    version are ignored (the reference tried any version). Raises `WebhookSignatureInvalid`.
    """
    if not secret:
        raise WebhookSignatureInvalid("No Revolut signing secret configured")
    signature = header(headers, REVOLUT_SIGNATURE_HEADER)
    if signature is None:
        raise WebhookSignatureInvalid("Missing Revolut-Signature header")
    timestamp = header(headers, REVOLUT_TIMESTAMP_HEADER)
    if timestamp is None:
        raise WebhookSignatureInvalid("Missing Revolut-Request-Timestamp header")
    timestamp = timestamp.strip()
    if not timestamp.isascii() or not timestamp.isdigit():
        raise WebhookSignatureInvalid("Revolut-Request-Timestamp is not a Unix timestamp")
    if tolerance_s is not None:
        signed_at = from_unix(int(timestamp) / 1000, REVOLUT_TIMESTAMP_HEADER)
        check_fresh(signed_at, now, tolerance_s)
    candidates = []
    for item in signature.split(","):
        version, sep, digest = item.strip().partition("=")
        if sep and version.strip() == SCHEME:
            candidates.append(digest)
    if not candidates:
        raise WebhookSignatureInvalid("No v1 signature in Revolut-Signature")
    expected = hmac_hex(secret, f"{SCHEME}.{timestamp}.".encode("ascii") + body)
    if not any_matches(expected, candidates):
        raise WebhookSignatureInvalid("No valid signature found")


def parse_revolut_event(body: bytes) -> tuple[str, str]:
    """`(event, external id)` of a verified Revolut body `{event, order_id,
    merchant_order_ext_ref?}`: the external id is `merchant_order_ext_ref` when present and
    non-empty, else `order_id` (§7.5). Raises `WebhookPayloadInvalid`.
    """
    document = json_object(body, "Revolut")
    event = document.get("event")
    if not isinstance(event, str) or not event:
        raise WebhookPayloadInvalid("Revolut webhook has no event")
    ext_ref = document.get("merchant_order_ext_ref")
    if isinstance(ext_ref, str) and ext_ref:
        return event, ext_ref
    order_id = document.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        raise WebhookPayloadInvalid("Revolut webhook has no order_id")
    return event, order_id


def revolut_event(body: bytes) -> WebhookEvent:
    """The event of a verified Revolut body: ORDER_COMPLETED completes; others are ignored."""
    kind, external_id = parse_revolut_event(body)
    return WebhookEvent(kind=kind, external_id=external_id, completes=kind == ORDER_COMPLETED)


class RevolutWebhook(SignedWebhook):
    """The Revolut `WebhookVerifier`: ORDER_COMPLETED completes; other events are ignored."""

    method = PaymentMethod.REVOLUT
    default_tolerance_s: int | None = REVOLUT_DEFAULT_TOLERANCE_S

    def __init__(self) -> None:
        super().__init__(verify_revolut_signature, revolut_event)
