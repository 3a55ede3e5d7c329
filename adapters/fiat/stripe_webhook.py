"""Stripe webhook deliveries: `Stripe-Signature` HMAC and window; payments, disputes, refunds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from adapters.fiat.signatures import (
    DEFAULT_TOLERANCE_S,
    SCHEME,
    HmacScheme,
    SignedWebhook,
    json_object,
)
from domain.enums import PaymentMethod
from ports.payment_rail import (
    DISPUTE,
    REFUND,
    MoneyBack,
    WebhookEvent,
    WebhookPayloadInvalid,
    WebhookSignatureInvalid,
)

STRIPE_SIGNATURE_HEADER: Final = "Stripe-Signature"
#: Stripe's own libraries refuse events signed more than five minutes away from now.
STRIPE_DEFAULT_TOLERANCE_S: Final = DEFAULT_TOLERANCE_S
#: a Checkout Session was completed; it is paid when its `payment_status` is `paid`.
SESSION_COMPLETED: Final = "checkout.session.completed"
#: a delayed payment method (a bank debit) finally paid the session.
SESSION_ASYNC_SUCCEEDED: Final = "checkout.session.async_payment_succeeded"
#: a PaymentIntent succeeded: one of a Checkout Session's (every session payment sends it),
#: or a payment created before Checkout Sessions.
INTENT_SUCCEEDED: Final = "payment_intent.succeeded"
#: a cardholder disputed a charge (a chargeback); `data.object` is the Dispute.
DISPUTE_CREATED: Final = "charge.dispute.created"
#: a dispute was decided (`status` won or lost); `data.object` is the Dispute.
DISPUTE_CLOSED: Final = "charge.dispute.closed"
#: a charge was refunded, wholly or in part; `data.object` is the Charge.
CHARGE_REFUNDED: Final = "charge.refunded"


def _read_signed(headers: Mapping[str, str], signature: str) -> tuple[str, list[str]]:
    """The one `t=` and the `v1=` items of `Stripe-Signature: t=…,v1=…`."""
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
    return timestamps[0], candidates


#: hex(HMAC-SHA256(secret, t + "." + raw body)); `t` must lie within the tolerance (default
#: 300 s, as Stripe's libraries), stricter than the reference, which had none.
STRIPE_SIGNING = HmacScheme(
    header=STRIPE_SIGNATURE_HEADER,
    no_secret="Stripe webhook secret",
    read=_read_signed,
    timestamp_name="Stripe-Signature timestamp",
    timestamp_header=STRIPE_SIGNATURE_HEADER,
    mismatch="Invalid signature",
)
verify_stripe_signature = STRIPE_SIGNING.check


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


def _text(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    return value if isinstance(value, str) and value else None


def _amount(obj: dict[str, Any], name: str) -> int | None:
    value = obj.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _money_back(kind: str, obj: dict[str, Any]) -> MoneyBack:
    """A dispute's (`charge.dispute.*`, a Dispute) or a refund's (`charge.refunded`, a
    Charge) report; it names the charge by its PaymentIntent, else the charge's id. A
    dispute is reported once per id and event; a refund once per charge and refunded total
    (each partial refund raises it)."""
    object_id = _text(obj, "id")
    charge = object_id if kind == CHARGE_REFUNDED else _text(obj, "charge")
    reference = _text(obj, "payment_intent") or charge
    if object_id is None or reference is None:
        raise WebhookPayloadInvalid(f"Stripe {kind} event names no charge")
    currency = (_text(obj, "currency") or "").upper() or None
    if kind == CHARGE_REFUNDED:
        refunded = _amount(obj, "amount_refunded")
        whole = "wholly" if obj.get("refunded") is True else "in part"
        return MoneyBack(
            what=REFUND,
            key=f"{object_id}:refunded:{refunded}",
            reference=reference,
            amount=refunded,
            currency=currency,
            detail=f"charge {object_id} refunded {whole}",
        )
    state = "opened" if kind == DISPUTE_CREATED else "closed"
    return MoneyBack(
        what=DISPUTE,
        key=f"{object_id}:{state}",
        reference=reference,
        amount=_amount(obj, "amount"),
        currency=currency,
        detail=(
            f"dispute {object_id} {state} (reason: {_text(obj, 'reason') or 'not given'}, "
            f"status: {_text(obj, 'status') or 'not given'})"
        ),
    )


def stripe_event(body: bytes) -> WebhookEvent:
    """The event of a verified Stripe body: `checkout.session.completed` with
    `payment_status: paid` (or `checkout.session.async_payment_succeeded`) completes the
    session `data.object.id`; `payment_intent.succeeded` completes the intent's payment (a
    Checkout Session's, or one made before Checkout); a dispute opened or closed and a
    refund are reported (`money_back`); anything else is ignored."""
    kind, obj = _data_object(body)
    if kind in (DISPUTE_CREATED, DISPUTE_CLOSED, CHARGE_REFUNDED):
        back = _money_back(kind, obj)
        return WebhookEvent(kind=kind, external_id=back.reference, completes=False, money_back=back)
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
