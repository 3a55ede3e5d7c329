"""HMAC-SHA256 webhook signature helpers shared by the providers' verifiers (D14)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from domain.enums import PaymentMethod
from ports.payment_rail import (
    WebhookDelivery,
    WebhookEvent,
    WebhookPayloadInvalid,
    WebhookSignatureInvalid,
)

#: the only signature scheme either provider documents.
SCHEME = "v1"
#: both providers document a five-minute window for a delivery's signed timestamp.
DEFAULT_TOLERANCE_S = 300
#: a signature header's (timestamp, v1 digests), read from the headers and its value.
ReadSigned = Callable[[Mapping[str, str], str], tuple[str, list[str]]]


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


#: a Unix timestamp in milliseconds has 13 digits; a longer one is refused before `int()` (a
#: few thousand digits would make `int()` raise, a few hundred overflow the float division)
MAX_TIMESTAMP_DIGITS: Final = 16


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


@attrs.frozen(kw_only=True)
class HmacScheme:
    """One provider's HMAC-SHA256 signing of a delivery: the header of its `v1` digests, how
    the signed timestamp is read and in what unit, what is signed, and each refusal's words."""

    header: str
    #: "No {no_secret} configured"
    no_secret: str
    read: ReadSigned
    #: "{timestamp_name} is not a Unix timestamp"
    timestamp_name: str
    #: the header named when the timestamp is out of range
    timestamp_header: str
    #: timestamp units a second (Revolut signs milliseconds)
    per_second: int = 1
    #: what precedes "{timestamp}." and the body in the signed message
    signed_prefix: str = ""
    mismatch: str

    def check(
        self,
        headers: Mapping[str, str],
        body: bytes,
        secret: str,
        now: datetime | None,
        tolerance_s: int | None = DEFAULT_TOLERANCE_S,
    ) -> None:
        """Accept the delivery if any `v1` digest is hex(HMAC-SHA256(secret, signed message))
        and, unless `tolerance_s` is None, its timestamp lies within `tolerance_s` seconds
        of `now`. Raises `WebhookSignatureInvalid`."""
        if not secret:
            raise WebhookSignatureInvalid(f"No {self.no_secret} configured")
        signature = header(headers, self.header)
        if signature is None:
            raise WebhookSignatureInvalid(f"Missing {self.header} header")
        timestamp, candidates = self.read(headers, signature)
        if (
            not timestamp.isascii()
            or not timestamp.isdigit()
            or len(timestamp) > MAX_TIMESTAMP_DIGITS
        ):
            raise WebhookSignatureInvalid(f"{self.timestamp_name} is not a Unix timestamp")
        if not candidates:
            raise WebhookSignatureInvalid(f"No {SCHEME} signature in {self.header}")
        if tolerance_s is not None:
            seconds = int(timestamp) / self.per_second if self.per_second > 1 else int(timestamp)
            check_fresh(from_unix(seconds, self.timestamp_header), now, tolerance_s)
        expected = hmac_hex(secret, f"{self.signed_prefix}{timestamp}.".encode("ascii") + body)
        if not any_matches(expected, candidates):
            raise WebhookSignatureInvalid(self.mismatch)


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
