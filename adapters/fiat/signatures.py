"""HMAC-SHA256 webhook signature helpers shared by the providers' verifiers (D14)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from domain.enums import PaymentMethod
from ports.payment_rail import (
    WebhookDelivery,
    WebhookEvent,
    WebhookPayloadInvalid,
    WebhookSignatureInvalid,
)

#: the only signature scheme either provider documents.
SCHEME = "v1"


def header(headers: Mapping[str, str], name: str) -> str | None:
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


def hmac_hex(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest().encode("ascii")


def any_matches(expected: bytes, candidates: list[str]) -> bool:
    """Constant-time comparison against every candidate (no early exit on a mismatch)."""
    found = False
    for candidate in candidates:
        if hmac.compare_digest(expected, candidate.strip().lower().encode("utf-8")):
            found = True
    return found


def check_fresh(signed_at: datetime, now: datetime | None, tolerance_s: int) -> None:
    if now is None:
        raise ValueError("a timestamp tolerance needs `now` (from the Clock port)")
    if now.tzinfo is None:
        raise ValueError("`now` must be an aware datetime")
    if abs((now - signed_at).total_seconds()) > tolerance_s:
        raise WebhookSignatureInvalid(
            f"Timestamp {signed_at.isoformat()} outside the {tolerance_s} s tolerance"
        )


def from_unix(seconds: float, header: str) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise WebhookSignatureInvalid(f"{header} timestamp out of range") from None


def json_object(body: bytes, provider: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        raise WebhookPayloadInvalid(f"{provider} webhook body is not JSON") from None
    if not isinstance(document, dict):
        raise WebhookPayloadInvalid(f"{provider} webhook body is not a JSON object")
    return document


#: checks a delivery's signature (headers, body, secret, now, tolerance_s) or raises.
SignatureCheck = Callable[[Mapping[str, str], bytes, str, datetime | None, int | None], None]


class SignedWebhook:
    """A `WebhookVerifier` made of a provider's signature check and its event parser."""

    method: PaymentMethod
    default_tolerance_s: int | None

    def __init__(self, check: SignatureCheck, parse: Callable[[bytes], WebhookEvent]) -> None:
        self._check = check
        self._parse = parse

    def verify(self, delivery: WebhookDelivery, secret: str) -> WebhookEvent:
        d = delivery
        self._check(d.headers, d.body, secret, d.now, d.tolerance_s)
        return self._parse(d.body)
