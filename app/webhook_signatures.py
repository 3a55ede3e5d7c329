"""Pure verifiers and parsers for Revolut and Stripe webhook deliveries (§7.5, D14)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from domain.errors import DomainError, InvalidInput

REVOLUT_SIGNATURE_HEADER = "Revolut-Signature"
REVOLUT_TIMESTAMP_HEADER = "Revolut-Request-Timestamp"
STRIPE_SIGNATURE_HEADER = "Stripe-Signature"
#: Stripe's own libraries refuse events signed more than five minutes away from now.
STRIPE_DEFAULT_TOLERANCE_S = 300
#: Revolut documents a five-minute window for `Revolut-Request-Timestamp` against replays.
REVOLUT_DEFAULT_TOLERANCE_S = 300
#: the only signature scheme either provider documents.
_SCHEME = "v1"


class WebhookSignatureInvalid(DomainError):
    """A webhook whose signature is missing, malformed, stale or wrong: answer 401 (D14).

    `kind` is "unauthorized", which the HTTP error middleware does not map on its own; the
    webhook route maps it through `status`. `reason` is for the log, never for the caller.
    """

    kind = "unauthorized"
    status = 401

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WebhookPayloadInvalid(InvalidInput):
    """A correctly signed webhook whose body is not the JSON event we expect (400)."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of `name`, matched case-insensitively; None when absent.

    A name sent twice with different values is refused rather than guessed at.
    """
    wanted = name.lower()
    values = {value for key, value in headers.items() if key.lower() == wanted}
    if not values:
        return None
    if len(values) > 1:
        raise WebhookSignatureInvalid(f"Conflicting {name} headers")
    return values.pop()


def _hmac_hex(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest().encode("ascii")


def _any_matches(expected: bytes, candidates: list[str]) -> bool:
    """Constant-time comparison against every candidate (no early exit on a mismatch)."""
    found = False
    for candidate in candidates:
        if hmac.compare_digest(expected, candidate.strip().lower().encode("utf-8")):
            found = True
    return found


def _check_fresh(signed_at: datetime, now: datetime | None, tolerance_s: int) -> None:
    if now is None:
        raise ValueError("a timestamp tolerance needs `now` (from the Clock port)")
    if now.tzinfo is None:
        raise ValueError("`now` must be an aware datetime")
    if abs((now - signed_at).total_seconds()) > tolerance_s:
        raise WebhookSignatureInvalid(
            f"Timestamp {signed_at.isoformat()} outside the {tolerance_s} s tolerance"
        )


def _from_unix(seconds: float, header: str) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise WebhookSignatureInvalid(f"{header} timestamp out of range") from None


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
    signature = _header(headers, REVOLUT_SIGNATURE_HEADER)
    if signature is None:
        raise WebhookSignatureInvalid("Missing Revolut-Signature header")
    timestamp = _header(headers, REVOLUT_TIMESTAMP_HEADER)
    if timestamp is None:
        raise WebhookSignatureInvalid("Missing Revolut-Request-Timestamp header")
    timestamp = timestamp.strip()
    if not timestamp.isascii() or not timestamp.isdigit():
        raise WebhookSignatureInvalid("Revolut-Request-Timestamp is not a Unix timestamp")
    if tolerance_s is not None:
        signed_at = _from_unix(int(timestamp) / 1000, REVOLUT_TIMESTAMP_HEADER)
        _check_fresh(signed_at, now, tolerance_s)
    candidates = []
    for item in signature.split(","):
        version, sep, digest = item.strip().partition("=")
        if sep and version.strip() == _SCHEME:
            candidates.append(digest)
    if not candidates:
        raise WebhookSignatureInvalid("No v1 signature in Revolut-Signature")
    expected = _hmac_hex(secret, f"{_SCHEME}.{timestamp}.".encode("ascii") + body)
    if not _any_matches(expected, candidates):
        raise WebhookSignatureInvalid("No valid signature found")


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
    signature = _header(headers, STRIPE_SIGNATURE_HEADER)
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
        elif key.strip() == _SCHEME:
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
        _check_fresh(_from_unix(int(timestamp), STRIPE_SIGNATURE_HEADER), now, tolerance_s)
    expected = _hmac_hex(secret, f"{timestamp}.".encode("ascii") + body)
    if not _any_matches(expected, candidates):
        raise WebhookSignatureInvalid("Invalid signature")


def _json_object(body: bytes, provider: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        raise WebhookPayloadInvalid(f"{provider} webhook body is not JSON") from None
    if not isinstance(document, dict):
        raise WebhookPayloadInvalid(f"{provider} webhook body is not a JSON object")
    return document


def parse_revolut_event(body: bytes) -> tuple[str, str]:
    """`(event, external id)` of a verified Revolut body `{event, order_id,
    merchant_order_ext_ref?}`: the external id is `merchant_order_ext_ref` when present and
    non-empty, else `order_id` (§7.5). Raises `WebhookPayloadInvalid`.
    """
    document = _json_object(body, "Revolut")
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


def parse_stripe_event(body: bytes) -> tuple[str, str | None]:
    """`(type, payment intent id)` of a verified Stripe event `{id, type, data: {object}}`.

    The id is `data.object.id` when the object is a PaymentIntent (its `object` field says
    so, or the event type starts with `payment_intent.`), else None. Raises
    `WebhookPayloadInvalid`.
    """
    document = _json_object(body, "Stripe")
    kind = document.get("type")
    if not isinstance(kind, str) or not kind:
        raise WebhookPayloadInvalid("Stripe event has no type")
    data = document.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise WebhookPayloadInvalid("Stripe event has no data.object")
    is_intent = obj.get("object") == "payment_intent" or (
        "object" not in obj and kind.startswith("payment_intent.")
    )
    if not is_intent:
        return kind, None
    intent_id = obj.get("id")
    if not isinstance(intent_id, str) or not intent_id:
        raise WebhookPayloadInvalid("Stripe payment_intent event has no data.object.id")
    return kind, intent_id
