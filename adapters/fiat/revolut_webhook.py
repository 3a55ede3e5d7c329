"""Revolut webhook deliveries: Revolut-Signature HMAC, timestamp window, orders paid, disputes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from adapters.fiat.signatures import (
    DEFAULT_TOLERANCE_S,
    SCHEME,
    HmacScheme,
    SignedWebhook,
    header,
    json_object,
)
from domain.enums import PaymentMethod
from ports.payment_rail import (
    DISPUTE,
    MoneyBack,
    WebhookEvent,
    WebhookPayloadInvalid,
    WebhookSignatureInvalid,
)

REVOLUT_SIGNATURE_HEADER: Final = "Revolut-Signature"
REVOLUT_TIMESTAMP_HEADER: Final = "Revolut-Request-Timestamp"
#: Revolut documents a five-minute window for `Revolut-Request-Timestamp` against replays.
REVOLUT_DEFAULT_TOLERANCE_S: Final = DEFAULT_TOLERANCE_S
#: the event that completes a payment.
ORDER_COMPLETED: Final = "ORDER_COMPLETED"
#: the prefix of the dispute events (`DISPUTE_ACTION_REQUIRED`, `DISPUTE_UNDER_REVIEW`,
#: `DISPUTE_WON`, `DISPUTE_LOST`): each is reported to the admins once per order.
DISPUTE_PREFIX: Final = "DISPUTE_"


def _read_signed(headers: Mapping[str, str], signature: str) -> tuple[str, list[str]]:
    """`Revolut-Request-Timestamp` (Unix milliseconds) and the `v1=<hex>` items of
    `Revolut-Signature`; items of another version are ignored (the reference tried any)."""
    timestamp = header(headers, REVOLUT_TIMESTAMP_HEADER)
    if timestamp is None:
        raise WebhookSignatureInvalid("Missing Revolut-Request-Timestamp header")
    candidates = []
    for item in signature.split(","):
        version, sep, digest = item.strip().partition("=")
        if sep and version.strip() == SCHEME:
            candidates.append(digest)
    return timestamp.strip(), candidates


#: hex(HMAC-SHA256(secret, "v1." + Revolut-Request-Timestamp + "." + raw body)); the
#: timestamp must lie within the tolerance (default 300 s, Revolut's documented window; the
#: reference had no check, so a captured delivery could be replayed forever).
REVOLUT_SIGNING = HmacScheme(
    header=REVOLUT_SIGNATURE_HEADER,
    no_secret="Revolut signing secret",
    read=_read_signed,
    timestamp_name=REVOLUT_TIMESTAMP_HEADER,
    timestamp_header=REVOLUT_TIMESTAMP_HEADER,
    per_second=1000,
    signed_prefix=f"{SCHEME}.",
    mismatch="No valid signature found",
)
verify_revolut_signature = REVOLUT_SIGNING.check


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
    """The event of a verified Revolut body: ORDER_COMPLETED completes; a `DISPUTE_*` event
    is reported (`money_back`, keyed by order and state); others are ignored."""
    kind, external_id = parse_revolut_event(body)
    if kind.startswith(DISPUTE_PREFIX):
        back = MoneyBack(
            what=DISPUTE,
            key=f"{external_id}:{kind}",
            reference=external_id,
            detail=f"dispute state {kind.removeprefix(DISPUTE_PREFIX)}",
        )
        return WebhookEvent(kind=kind, external_id=external_id, completes=False, money_back=back)
    return WebhookEvent(kind=kind, external_id=external_id, completes=kind == ORDER_COMPLETED)


class RevolutWebhook(SignedWebhook):
    """The Revolut `WebhookVerifier`: ORDER_COMPLETED completes, disputes are reported,
    other events are ignored."""

    method = PaymentMethod.REVOLUT
    default_tolerance_s: int | None = REVOLUT_DEFAULT_TOLERANCE_S

    def __init__(self) -> None:
        super().__init__(verify_revolut_signature, revolut_event)
