"""Disputes and refunds reported by Stripe and Revolut webhooks: recorded and told once, no more."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from adapters.fiat.stripe import StripeGateway
from adapters.http.routes_webhooks import WEBHOOK_SECRETS, WebhookSecrets
from app.billing.admin_notices import notices_of
from app.billing.money_back import MONEY_BACK_KEY
from domain.enums import PaymentMethod, VmHistoryActionType
from domain.model import VmHistory
from ports.jobs import SendAdminNotification
from tests.fakes.fake_stripe import FakeStripe
from tests.http.apiapp import ALICE, NOW, ApiClient, api_client
from tests.http.vm_helpers import build, order, renew, subscription_of, with_revolut

STRIPE_SECRET = "whsec_money_back"
REVOLUT_SECRET = "wsk_money_back"
MONTH = 30 * 86_400


@pytest.fixture
async def world() -> AsyncIterator[tuple[ApiClient, FakeStripe]]:
    fake = FakeStripe()
    fake.now = NOW.timestamp()
    async with fake.running() as url:
        gateway = StripeGateway(url, secret_key=fake.secret_key)
        api = build(fiat={PaymentMethod.STRIPE: gateway})
        api.app[WEBHOOK_SECRETS] = WebhookSecrets(stripe=STRIPE_SECRET)
        try:
            async with api_client(api) as client:
                yield client, fake
        finally:
            await gateway.aclose()


async def stripe_hook(c: ApiClient, fake: FakeStripe, kind: str, object_id: str) -> int:
    body = fake.event(kind, object_id)
    at = int(c.api.clock.now().timestamp())
    headers = fake.signature(body, STRIPE_SECRET, at)
    return (await c.client.post("/api/v1/webhook/stripe", data=body, headers=headers)).status


async def paid_by_stripe(c: ApiClient, fake: FakeStripe) -> tuple[dict[str, Any], str, int]:
    """A VM paid through Checkout: (its payment as the API shows it, session id, VM id)."""
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"], "?method=stripe")
    session_id = payment["data"]["stripe"]["session_id"]
    fake.complete(session_id)
    assert await stripe_hook(c, fake, "checkout.session.completed", session_id) == 200
    vm_id: int = vm["id"]
    return payment, session_id, vm_id


async def notices(c: ApiClient) -> list[SendAdminNotification]:
    jobs = [d.job for d in await c.api.queue.receive(100, 0)]
    return [j for j in jobs if isinstance(j, SendAdminNotification)]


async def money_history(c: ApiClient, vm_id: int) -> list[VmHistory]:
    async with c.api.store() as uow:
        entries = (await uow.vm_history.list_by_vm(vm_id, 100)).items
    return [e for e in entries if isinstance(e.metadata, dict) and MONEY_BACK_KEY in e.metadata]


async def test_a_stripe_dispute_is_told_once_with_its_payment_and_changes_nothing_else(
    world: tuple[ApiClient, FakeStripe], caplog: pytest.LogCaptureFixture
) -> None:
    c, fake = world
    payment, session_id, vm_id = await paid_by_stripe(c, fake)
    await notices(c)  # the payment's own
    before = await subscription_of(c.api, vm_id)
    dispute_id = fake.dispute(session_id)
    with caplog.at_level(logging.ERROR):
        answers = await asyncio.gather(
            *(stripe_hook(c, fake, "charge.dispute.created", dispute_id) for _ in range(3))
        )
    assert answers == [200, 200, 200]
    assert await stripe_hook(c, fake, "charge.dispute.created", dispute_id) == 200
    [notice] = await notices(c)
    user_id = await c.user_id(ALICE)
    amount = fake.sessions[session_id]["amount_total"]
    for fact in (payment["id"], f"subscription {before.id}", f"user {user_id}", f"VM {vm_id}"):
        assert fact in notice.message, fact
    assert f"{amount} EUR" in notice.message and dispute_id in notice.message
    assert "NOT suspended" in notice.message
    assert [r for r in caplog.records if r.getMessage().startswith("OPERATOR:")]
    [entry] = await money_history(c, vm_id)
    assert entry.action_type is VmHistoryActionType.STATE_CHANGED
    assert isinstance(entry.metadata, dict)
    assert entry.metadata[MONEY_BACK_KEY]["payment_id"] == payment["id"]
    async with c.api.store() as uow:
        stored = await uow.payments.get(bytes.fromhex(payment["id"]))
        vm = await uow.vms.get(vm_id)
    assert stored is not None and stored.is_paid
    assert [n["what"] for n in notices_of(stored)] == ["dispute"]
    # nothing is suspended or taken back: the service runs on as paid
    assert await subscription_of(c.api, vm_id) == before
    assert vm is not None and vm.deleted is False


async def test_each_stripe_refund_is_told_once(world: tuple[ApiClient, FakeStripe]) -> None:
    """A partial refund, then the rest: two reports (the refunded total differs); each
    replayed changes nothing."""
    c, fake = world
    payment, session_id, vm_id = await paid_by_stripe(c, fake)
    await notices(c)
    charge_id = fake.refund(session_id, 100)
    first = fake.event("charge.refunded", charge_id)
    rest = fake.sessions[session_id]["amount_total"] - 100
    fake.refund(session_id, rest)
    at = int(c.api.clock.now().timestamp())
    for body in (first, fake.event("charge.refunded", charge_id), first):
        headers = fake.signature(body, STRIPE_SECRET, at)
        resp = await c.client.post("/api/v1/webhook/stripe", data=body, headers=headers)
        assert resp.status == 200
    told = await notices(c)
    assert len(told) == 2 and all(payment["id"] in n.message for n in told)
    assert "100 EUR" in told[0].message and "in part" in told[0].message
    assert "wholly" in told[1].message
    assert len(await money_history(c, vm_id)) == 2


async def test_disputes_of_no_payment_of_ours_are_acknowledged_and_logged(
    world: tuple[ApiClient, FakeStripe], caplog: pytest.LogCaptureFixture
) -> None:
    c, fake = world
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"], "?method=stripe")
    session_id = payment["data"]["stripe"]["session_id"]
    fake.complete(session_id)
    dispute_id = fake.dispute(session_id)
    fake.objects[dispute_id]["payment_intent"] = "pi_of_another_shop"
    with caplog.at_level(logging.WARNING):
        assert await stripe_hook(c, fake, "charge.dispute.created", dispute_id) == 200
    assert any("names no payment of ours" in r.getMessage() for r in caplog.records)
    assert await notices(c) == []


async def test_a_forged_or_malformed_dispute_changes_nothing(
    world: tuple[ApiClient, FakeStripe],
) -> None:
    c, fake = world
    _, session_id, vm_id = await paid_by_stripe(c, fake)
    await notices(c)
    dispute_id = fake.dispute(session_id)
    body = fake.event("charge.dispute.created", dispute_id)
    at = int(c.api.clock.now().timestamp())
    forged = fake.signature(body, "not-the-secret", at)
    resp = await c.client.post("/api/v1/webhook/stripe", data=body, headers=forged)
    assert resp.status == 401
    del fake.objects[dispute_id]["payment_intent"], fake.objects[dispute_id]["charge"]
    assert await stripe_hook(c, fake, "charge.dispute.created", dispute_id) == 400
    assert await notices(c) == []
    assert await money_history(c, vm_id) == []


async def test_a_provider_outage_while_finding_the_disputed_payment_is_503(
    world: tuple[ApiClient, FakeStripe],
) -> None:
    """The dispute names the PaymentIntent; which session it is needs Stripe: when Stripe is
    down the webhook answers 503, so Stripe delivers it again later."""
    c, fake = world
    _, session_id, _ = await paid_by_stripe(c, fake)
    await notices(c)
    dispute_id = fake.dispute(session_id)
    body = fake.event("charge.dispute.created", dispute_id)
    fake.fail_status = 500
    at = int(c.api.clock.now().timestamp())
    headers = fake.signature(body, STRIPE_SECRET, at)
    resp = await c.client.post("/api/v1/webhook/stripe", data=body, headers=headers)
    assert resp.status == 503
    fake.fail_status = None
    resp = await c.client.post("/api/v1/webhook/stripe", data=body, headers=headers)
    assert resp.status == 200
    assert len(await notices(c)) == 1


def revolut_post(body: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    ts = str(int(NOW.timestamp() * 1000))
    digest = hmac.new(REVOLUT_SECRET.encode(), f"v1.{ts}.".encode() + raw, hashlib.sha256)
    headers = {
        "Revolut-Signature": f"v1={digest.hexdigest()}",
        "Revolut-Request-Timestamp": ts,
        "Content-Type": "application/json",
    }
    return raw, headers


async def test_revolut_disputes_are_told_once_per_state() -> None:
    api = build()
    with_revolut(api)
    api.app[WEBHOOK_SECRETS] = WebhookSecrets(revolut=REVOLUT_SECRET)
    async with api_client(api) as c:
        vm = await order(c, ALICE)
        payment = await renew(c, ALICE, vm["id"], "?method=revolut")
        completed, headers = revolut_post(
            {"event": "ORDER_COMPLETED", "order_id": "revolut-order-1"}
        )
        resp = await c.client.post("/api/v1/webhook/revolut", data=completed, headers=headers)
        assert resp.status == 200
        await notices(c)
        for event in ("DISPUTE_ACTION_REQUIRED", "DISPUTE_ACTION_REQUIRED", "DISPUTE_LOST"):
            raw, headers = revolut_post({"event": event, "order_id": "revolut-order-1"})
            resp = await c.client.post("/api/v1/webhook/revolut", data=raw, headers=headers)
            assert resp.status == 200
        told = await notices(c)
        assert len(told) == 2 and all(payment["id"] in n.message for n in told)
        assert "ACTION_REQUIRED" in told[0].message and "LOST" in told[1].message
        raw, headers = revolut_post({"event": "DISPUTE_LOST", "order_id": "no-such-order"})
        resp = await c.client.post("/api/v1/webhook/revolut", data=raw, headers=headers)
        assert resp.status == 200
        assert await notices(c) == []
        sub = await subscription_of(c.api, vm["id"])
        assert sub.expires == NOW + timedelta(seconds=MONTH)
