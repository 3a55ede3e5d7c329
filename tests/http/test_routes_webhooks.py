"""Revolut and Stripe webhooks (D14): 401 and unchanged, 404 unknown, paid once when replayed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from adapters.http.routes_webhooks import WEBHOOK_SECRETS, WebhookSecrets
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.model import PaymentMethodConfig, SubscriptionPayment
from ports.jobs import SendAdminNotification
from tests.http.apiapp import ALICE, NOW, ApiClient, api_client
from tests.http.vm_helpers import build, order, renew, subscription_of, with_revolut
from tests.nostr_signing import NostrKey

REVOLUT_SECRET = "wsk_revolut_test"
STRIPE_SECRET = "whsec_stripe_test"
MONTH = 30 * 86_400
#: the admin who completes ALICE's orders by hand (never her own: app.admin.own_account)
CLERK = NostrKey.from_seed(77)


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    api = build()
    with_revolut(api)
    api.app[WEBHOOK_SECRETS] = WebhookSecrets(revolut=REVOLUT_SECRET, stripe=STRIPE_SECRET)
    async with api_client(api) as client:
        yield client


def revolut_headers(
    body: bytes, secret: str = REVOLUT_SECRET, ts: str = "1781690400000"
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"v1.{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Revolut-Signature": f"v1={digest}",
        "Revolut-Request-Timestamp": ts,
        "Content-Type": "application/json",
    }


def stripe_headers(body: bytes, when: int, secret: str = STRIPE_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"{when}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={when},v1={digest}", "Content-Type": "application/json"}


def revolut_event(order_id: str, event: str = "ORDER_COMPLETED") -> bytes:
    return json.dumps({"event": event, "order_id": order_id}).encode()


async def revolut_payment(c: ApiClient) -> tuple[int, dict[str, Any]]:
    vm = await order(c, ALICE)
    return vm["id"], await renew(c, ALICE, vm["id"], "?method=revolut")


async def is_paid(c: ApiClient, payment_id: str) -> bool:
    body = await (await c.call("GET", f"/api/v1/payment/{payment_id}")).json()
    return bool(body["data"]["is_paid"])


async def post(c: ApiClient, path: str, body: bytes, headers: dict[str, str]) -> Any:
    return await c.client.post(path, data=body, headers=headers)


async def test_bad_or_missing_revolut_signature_is_401_and_changes_nothing(c: ApiClient) -> None:
    _, payment = await revolut_payment(c)
    body = revolut_event("revolut-order-1")
    for headers in (
        revolut_headers(body, secret="wrong"),
        {"Content-Type": "application/json"},
        revolut_headers(b"{}"),
    ):
        resp = await post(c, "/api/v1/webhook/revolut", body, headers)
        assert resp.status == 401
        assert await resp.json() == {"error": "Invalid webhook signature"}
    assert await is_paid(c, payment["id"]) is False


async def test_unknown_payment_is_404_and_other_events_are_ignored(c: ApiClient) -> None:
    _, payment = await revolut_payment(c)
    body = revolut_event("no-such-order")
    resp = await post(c, "/api/v1/webhook/revolut", body, revolut_headers(body))
    assert resp.status == 404
    body = revolut_event("revolut-order-1", "ORDER_AUTHORISED")
    resp = await post(c, "/api/v1/webhook/revolut", body, revolut_headers(body))
    assert resp.status == 200 and await resp.read() == b""
    assert await is_paid(c, payment["id"]) is False
    junk = b"[1,2]"
    resp = await post(c, "/api/v1/webhook/revolut", junk, revolut_headers(junk))
    assert resp.status == 400


async def test_a_good_revolut_webhook_pays_once_even_when_replayed(c: ApiClient) -> None:
    vm_id, payment = await revolut_payment(c)
    body = revolut_event("revolut-order-1")
    headers = revolut_headers(body)
    resp = await post(c, "/api/v1/webhook/revolut", body, headers)
    assert resp.status == 200 and await resp.read() == b""
    assert await is_paid(c, payment["id"]) is True
    replays = await asyncio.gather(
        *[post(c, "/api/v1/webhook/revolut", body, headers) for _ in range(3)]
    )
    assert [r.status for r in replays] == [200, 200, 200]
    assert (await subscription_of(c.api, vm_id)).expires == NOW + timedelta(seconds=MONTH)


async def add_stripe_payment(c: ApiClient, vm_id: int) -> bytes:
    sub = await subscription_of(c.api, vm_id)
    payment_id = hashlib.sha256(b"stripe-payment").digest()
    async with c.api.store() as uow:
        await uow.payments.add(
            SubscriptionPayment(
                id=payment_id,
                subscription_id=sub.id,
                user_id=sub.user_id,
                created=NOW,
                expires=NOW + timedelta(hours=1),
                amount=270,
                currency="EUR",
                payment_method=PaymentMethod.STRIPE,
                payment_type=SubscriptionPaymentType.PURCHASE,
                external_data='{"session_id":"cs_test_1"}',
                rate=Decimal(1),
                external_id="pi_123",
                time_value=MONTH,
            )
        )
        await uow.commit()
    return payment_id


def stripe_event(intent: str) -> bytes:
    return json.dumps(
        {
            "id": "evt_1",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": intent, "object": "payment_intent"}},
        }
    ).encode()


async def test_stripe_webhook(c: ApiClient) -> None:
    vm = await order(c, ALICE)
    payment_id = (await add_stripe_payment(c, vm["id"])).hex()
    shown = await (await c.call("GET", f"/api/v1/payment/{payment_id}")).json()
    assert shown["data"]["data"] == {"stripe": {"session_id": "cs_test_1"}}
    body = stripe_event("pi_123")
    now = int(c.api.clock.now().timestamp())
    stale = await post(c, "/api/v1/webhook/stripe", body, stripe_headers(body, now - 3600))
    assert stale.status == 401
    forged = await post(c, "/api/v1/webhook/stripe", body, stripe_headers(body, now, "nope"))
    assert forged.status == 401
    assert await is_paid(c, payment_id) is False
    unknown = stripe_event("pi_unknown")
    resp = await post(c, "/api/v1/webhook/stripe", unknown, stripe_headers(unknown, now))
    assert resp.status == 404
    for _ in range(2):
        resp = await post(c, "/api/v1/webhook/stripe", body, stripe_headers(body, now))
        assert resp.status == 200
    assert await is_paid(c, payment_id) is True
    assert (await subscription_of(c.api, vm["id"])).expires == NOW + timedelta(seconds=MONTH)


async def test_a_webhook_naming_another_methods_payment_is_404_and_changes_nothing(
    c: ApiClient,
) -> None:
    """A provider's signed event completes its own orders only: Stripe (no rail here, so its
    signature alone would decide) naming a Revolut order, Revolut naming a Stripe intent."""
    _, revolut = await revolut_payment(c)
    vm = await order(c, ALICE)
    stripe_id = (await add_stripe_payment(c, vm["id"])).hex()
    body = stripe_event("revolut-order-1")
    now = int(c.api.clock.now().timestamp())
    resp = await post(c, "/api/v1/webhook/stripe", body, stripe_headers(body, now))
    assert (resp.status, await resp.json()) == (404, {"error": "Payment not found"})
    body = revolut_event("pi_123")
    resp = await post(c, "/api/v1/webhook/revolut", body, revolut_headers(body))
    assert resp.status == 404
    assert await is_paid(c, revolut["id"]) is False
    assert await is_paid(c, stripe_id) is False


async def test_secrets_come_from_the_payment_method_config_or_the_route_is_503() -> None:
    api = build()
    with_revolut(api)
    async with api_client(api) as c:
        _, payment = await revolut_payment(c)
        body = revolut_event("revolut-order-1")
        resp = await post(c, "/api/v1/webhook/revolut", body, revolut_headers(body))
        assert resp.status == 503
        async with api.store() as uow:
            await uow.payment_methods.add(
                PaymentMethodConfig(
                    id=0,
                    company_id=c.demo.company,
                    payment_method=PaymentMethod.REVOLUT,
                    name="revolut",
                    enabled=True,
                    provider_type="revolut",
                    config={"webhook_secret": "from-config"},
                    created=NOW,
                    modified=NOW,
                )
            )
            await uow.commit()
        resp = await post(
            c, "/api/v1/webhook/revolut", body, revolut_headers(body, secret="from-config")
        )
        assert resp.status == 200
        assert await is_paid(c, payment["id"]) is True


async def test_a_webhook_for_an_order_the_provider_says_is_unpaid_changes_nothing() -> None:
    """As the reference's try_complete: a signed ORDER_COMPLETED is re-checked at Revolut."""
    api = build()
    gateway = with_revolut(api)
    api.app[WEBHOOK_SECRETS] = WebhookSecrets(revolut=REVOLUT_SECRET, stripe=STRIPE_SECRET)
    async with api_client(api) as c:
        _, payment = await revolut_payment(c)
        gateway.unpaid.add("revolut-order-1")
        body = revolut_event("revolut-order-1")
        resp = await post(c, "/api/v1/webhook/revolut", body, revolut_headers(body))
        assert resp.status == 200
        assert await is_paid(c, payment["id"]) is False
        gateway.unpaid.clear()
        resp = await post(c, "/api/v1/webhook/revolut", body, revolut_headers(body))
        assert resp.status == 200 and await is_paid(c, payment["id"]) is True


async def test_a_provider_outage_during_the_recheck_is_503_so_the_webhook_is_retried() -> None:
    api = build()
    gateway = with_revolut(api)
    api.app[WEBHOOK_SECRETS] = WebhookSecrets(revolut=REVOLUT_SECRET, stripe=STRIPE_SECRET)
    async with api_client(api) as c:
        _, payment = await revolut_payment(c)
        gateway.down = True
        body = revolut_event("revolut-order-1")
        resp = await post(c, "/api/v1/webhook/revolut", body, revolut_headers(body))
        assert resp.status == 503 and await is_paid(c, payment["id"]) is False


async def test_a_card_order_paid_after_an_admin_completed_it_is_reported_not_credited(
    c: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The provider's word does not say whether the card was charged before the admin's
    completion (the same money) or after it (a second payment): the subscription is not
    extended again, nothing is credited, and the admins are told, naming the payment and
    the user; a webhook for an order paid by its own webhook tells nobody."""
    vm_id, payment = await revolut_payment(c)
    user_id = await c.user_id(ALICE)
    await c.api.services.admin.complete_as_admin(
        payment_id=bytes.fromhex(payment["id"]), admin_id=await c.user_id(CLERK)
    )
    await c.api.queue.receive(100, 0)  # the completion's own jobs
    body = revolut_event("revolut-order-1")
    with caplog.at_level(logging.WARNING):
        resp = await post(c, "/api/v1/webhook/revolut", body, revolut_headers(body))
    assert resp.status == 200
    assert (await subscription_of(c.api, vm_id)).expires == NOW + timedelta(seconds=MONTH)
    async with c.api.store() as uow:
        assert await uow.credit_ledger.balances(user_id) == {}
    jobs = [d.job for d in await c.api.queue.receive(100, 0)]
    [notice] = [j for j in jobs if isinstance(j, SendAdminNotification)]
    assert payment["id"] in notice.message and f"user {user_id}" in notice.message
    assert any(r.getMessage().startswith("OPERATOR:") for r in caplog.records)

    _, other = await revolut_payment(c)  # paid by its webhook, then the webhook again
    body = revolut_event("revolut-order-2")
    for _ in range(2):
        resp = await post(c, "/api/v1/webhook/revolut", body, revolut_headers(body))
        assert resp.status == 200
    assert await is_paid(c, other["id"]) is True
    jobs = [d.job for d in await c.api.queue.receive(100, 0)]
    assert not [j for j in jobs if isinstance(j, SendAdminNotification)]


async def test_duplicate_deliveries_for_an_admin_completed_card_order_tell_the_admins_once(
    c: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The provider retries its webhook, and a dashboard resends it: the admins hear of an
    order paid after an admin completed it once, however often it is delivered."""
    _, payment = await revolut_payment(c)
    await c.user_id(ALICE)
    await c.api.services.admin.complete_as_admin(
        payment_id=bytes.fromhex(payment["id"]), admin_id=await c.user_id(CLERK)
    )
    await c.api.queue.receive(100, 0)
    body = revolut_event("revolut-order-1")
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            resp = await post(c, "/api/v1/webhook/revolut", body, revolut_headers(body))
            assert resp.status == 200
        replays = await asyncio.gather(
            *[post(c, "/api/v1/webhook/revolut", body, revolut_headers(body)) for _ in range(3)]
        )
    assert [r.status for r in replays] == [200, 200, 200]
    jobs = [d.job for d in await c.api.queue.receive(100, 0)]
    [notice] = [j for j in jobs if isinstance(j, SendAdminNotification)]
    assert payment["id"] in notice.message
    assert sum(r.getMessage().startswith("OPERATOR:") for r in caplog.records) == 1
