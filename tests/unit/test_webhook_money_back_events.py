"""Disputes and refunds read from verified Stripe and Revolut bodies (`WebhookEvent.money_back`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.fiat.revolut_webhook import revolut_event
from adapters.fiat.stripe_webhook import stripe_event
from ports.payment_rail import DISPUTE, REFUND, MoneyBack, WebhookPayloadInvalid


def stripe_body(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"id": "evt_1", "type": kind, "data": {"object": obj}}).encode()


DISPUTE_OBJECT = {
    "id": "dp_1",
    "object": "dispute",
    "amount": 2700,
    "currency": "eur",
    "charge": "ch_1",
    "payment_intent": "pi_1",
    "reason": "fraudulent",
    "status": "needs_response",
}


def test_a_stripe_dispute_names_its_intent_and_is_keyed_by_its_id_and_state() -> None:
    opened = stripe_event(stripe_body("charge.dispute.created", DISPUTE_OBJECT))
    assert not opened.completes and opened.external_id == "pi_1"
    assert opened.money_back == MoneyBack(
        what=DISPUTE,
        key="dp_1:opened",
        reference="pi_1",
        amount=2700,
        currency="EUR",
        detail="dispute dp_1 opened (reason: fraudulent, status: needs_response)",
    )
    lost = {**DISPUTE_OBJECT, "status": "lost", "payment_intent": None}
    closed = stripe_event(stripe_body("charge.dispute.closed", lost))
    assert closed.money_back is not None
    assert (closed.money_back.key, closed.money_back.reference) == ("dp_1:closed", "ch_1")
    assert "status: lost" in closed.money_back.detail


def test_a_stripe_refund_is_keyed_by_its_charge_and_refunded_total() -> None:
    charge = {
        "id": "ch_1",
        "object": "charge",
        "amount": 2700,
        "amount_refunded": 700,
        "refunded": False,
        "currency": "eur",
        "payment_intent": "pi_1",
    }
    part = stripe_event(stripe_body("charge.refunded", charge)).money_back
    assert part is not None and part.what == REFUND
    assert (part.key, part.reference, part.amount) == ("ch_1:refunded:700", "pi_1", 700)
    assert part.detail == "charge ch_1 refunded in part"
    whole = {**charge, "amount_refunded": 2700, "refunded": True}
    rest = stripe_event(stripe_body("charge.refunded", whole)).money_back
    assert rest is not None and rest.key == "ch_1:refunded:2700" and "wholly" in rest.detail


@pytest.mark.parametrize(
    ("kind", "obj"),
    [
        ("charge.dispute.created", {"object": "dispute", "amount": 1}),
        ("charge.dispute.created", {"id": "dp_1", "object": "dispute"}),
        ("charge.refunded", {"object": "charge", "payment_intent": "pi_1"}),
    ],
)
def test_a_dispute_or_refund_naming_no_charge_is_malformed(kind: str, obj: dict[str, Any]) -> None:
    with pytest.raises(WebhookPayloadInvalid):
        stripe_event(stripe_body(kind, obj))


def test_other_stripe_events_report_no_money_back() -> None:
    event = stripe_event(stripe_body("charge.succeeded", {"id": "ch_1", "object": "charge"}))
    assert event.money_back is None and not event.completes


def test_revolut_disputes_are_keyed_by_order_and_state() -> None:
    body = json.dumps({"event": "DISPUTE_ACTION_REQUIRED", "order_id": "ord-1"}).encode()
    event = revolut_event(body)
    assert not event.completes
    assert event.money_back == MoneyBack(
        what=DISPUTE,
        key="ord-1:DISPUTE_ACTION_REQUIRED",
        reference="ord-1",
        detail="dispute state ACTION_REQUIRED",
    )
    body = json.dumps({"event": "ORDER_AUTHORISED", "order_id": "ord-1"}).encode()
    assert revolut_event(body).money_back is None
