"""Stripe from the web client: a renewal opens a Checkout Session, its signed webhook pays once."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from adapters.fiat.stripe import StripeGateway
from adapters.http.routes_webhooks import WEBHOOK_SECRETS, WebhookSecrets
from app.billing.credit_balance import adjust_credit
from app.billing.lapsed_orders import COMPLETE_WITHIN
from domain.enums import PaymentMethod, VmHistoryActionType
from ports.jobs import SendAdminNotification
from tests.fakes.fake_stripe import FakeStripe
from tests.http.apiapp import ALICE, NOW, ApiClient, api_client
from tests.http.vm_helpers import build, order, paid_vm, renew, subscription_of

SECRET = "whsec_checkout_test"
MONTH = 30 * 86_400
HOOK = "/api/v1/webhook/stripe"


@pytest.fixture
async def world() -> AsyncIterator[tuple[ApiClient, FakeStripe]]:
    fake = FakeStripe()
    fake.now = NOW.timestamp()  # Stripe's clock reads the test's
    async with fake.running() as url:
        gateway = StripeGateway(
            url, secret_key=fake.secret_key, success_url="https://lnvps.test/paid"
        )
        api = build(fiat={PaymentMethod.STRIPE: gateway})
        api.app[WEBHOOK_SECRETS] = WebhookSecrets(stripe=SECRET)
        try:
            async with api_client(api) as client:
                yield client, fake
        finally:
            await gateway.aclose()


async def shown(c: ApiClient, payment_id: str) -> dict[str, Any]:
    body = await (await c.call("GET", f"/api/v1/payment/{payment_id}", key=ALICE)).json()
    data: dict[str, Any] = body["data"]
    return data


async def deliver(
    c: ApiClient, fake: FakeStripe, kind: str, session_id: str, secret: str = SECRET
) -> int:
    body = fake.event(kind, session_id)
    at = int(c.api.clock.now().timestamp())
    resp = await c.client.post(HOOK, data=body, headers=fake.signature(body, secret, at))
    return resp.status


async def payments_of(c: ApiClient, vm_id: int) -> int:
    async with c.api.store() as uow:
        return (await uow.payments.list_by_vm(vm_id, 100)).total


def session_requests(fake: FakeStripe) -> int:
    return sum(path == "/v1/checkout/sessions" for _, path, _ in fake.requests)


async def renewals(c: ApiClient, vm_id: int) -> int:
    async with c.api.store() as uow:
        entries = (await uow.vm_history.list_by_vm(vm_id, 100)).items
    return sum(e.action_type is VmHistoryActionType.RENEWED for e in entries)


async def test_renewal_answers_the_checkout_session_the_client_pays_with(
    world: tuple[ApiClient, FakeStripe],
) -> None:
    c, fake = world
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"], "?method=stripe")
    session_id = payment["data"]["stripe"]["session_id"]
    assert session_id in fake.sessions
    session = fake.sessions[session_id]
    assert payment["data"]["stripe"]["url"] == session["url"]
    assert session["amount_total"] == payment["amount"] + payment["tax"] + payment["processing_fee"]
    assert session["currency"] == payment["currency"].lower()
    assert session["success_url"] == "https://lnvps.test/paid"


async def test_checkout_completed_pays_once_and_only_when_stripe_says_paid(
    world: tuple[ApiClient, FakeStripe],
) -> None:
    c, fake = world
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"], "?method=stripe")
    session_id = payment["data"]["stripe"]["session_id"]
    # a completed-but-unpaid session (a delayed method) and a forged event change nothing
    assert await deliver(c, fake, "checkout.session.completed", session_id) == 200
    assert await deliver(c, fake, "checkout.session.completed", session_id, "forged") == 401
    assert (await shown(c, payment["id"]))["is_paid"] is False
    # an event claiming paid that Stripe itself does not confirm changes nothing either
    fake.sessions[session_id]["payment_status"] = "paid"
    body = fake.event("checkout.session.completed", session_id)
    fake.sessions[session_id]["payment_status"] = "unpaid"
    at = int(c.api.clock.now().timestamp())
    resp = await c.client.post(HOOK, data=body, headers=fake.signature(body, SECRET, at))
    assert resp.status == 200
    assert (await shown(c, payment["id"]))["is_paid"] is False

    fake.complete(session_id)
    for _ in range(3):  # Stripe retries; replays are answered 200 and pay nothing more
        assert await deliver(c, fake, "checkout.session.completed", session_id) == 200
    assert (await shown(c, payment["id"]))["is_paid"] is True
    assert await renewals(c, vm["id"]) == 1
    sub = await subscription_of(c.api, vm["id"])
    assert sub.expires == NOW + timedelta(seconds=MONTH)


async def test_unknown_session_is_404_and_other_events_are_ignored(
    world: tuple[ApiClient, FakeStripe],
) -> None:
    c, fake = world
    assert await deliver(c, fake, "checkout.session.async_payment_succeeded", "cs_nope") == 404
    assert await deliver(c, fake, "customer.created", "cus_1") == 200


async def test_generic_route_refuses_rails_without_a_webhook(
    world: tuple[ApiClient, FakeStripe],
) -> None:
    c, _ = world
    body = json.dumps({"type": "x"}).encode()
    for rail in ("lightning", "paypal", "nope"):
        resp = await c.client.post(f"/api/v1/webhook/{rail}", data=body)
        assert resp.status == 404, rail


async def test_a_stripe_refusal_is_a_generic_502_and_stores_nothing(
    world: tuple[ApiClient, FakeStripe],
) -> None:
    """D19: a refusal for good (a 4xx) is not "try again later"; the user learns that
    Stripe refused, never Stripe's call or its words, which go to the log."""
    c, fake = world
    vm = await order(c, ALICE)
    before = await payments_of(c, vm["id"])
    fake.fail_status = 400
    resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew?method=stripe", key=ALICE)
    assert resp.status == 502
    assert await resp.json() == {
        "error": "Stripe refused the request; please use another payment method or contact support"
    }
    assert await payments_of(c, vm["id"]) == before


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_a_stripe_outage_is_a_generic_503(
    world: tuple[ApiClient, FakeStripe], status: int
) -> None:
    c, fake = world
    vm = await order(c, ALICE)
    fake.fail_status = status
    resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew?method=stripe", key=ALICE)
    assert resp.status == 503
    assert await resp.json() == {"error": "Stripe is unavailable; please try again later"}


async def test_a_card_rest_below_stripes_minimum_is_refused_before_stripe_is_asked(
    world: tuple[ApiClient, FakeStripe],
) -> None:
    """Credit pays EUR 2.50 of the EUR 2.70 renewal; Stripe refuses to charge the EUR 0.20
    left (its minimum is EUR 0.50, and this fake refuses it too), so the renewal says so
    at once with a 422 that names the way to pay it, spends no credit and stores nothing."""
    c, fake = world
    alice = await c.user_id(ALICE)
    await adjust_credit(
        c.api.store,
        c.api.clock,
        admin_id=alice,
        user_id=alice,
        currency="EUR",
        amount=250,
        note="gift",
    )
    vm = await order(c, ALICE)
    before = await payments_of(c, vm["id"])
    resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew?method=stripe", key=ALICE)
    assert resp.status == 422
    assert await resp.json() == {
        "error": "Stripe cannot take a payment below EUR 0.50 (this one is EUR 0.20); "
        "please pay it by Lightning"
    }
    assert session_requests(fake) == 0
    assert await payments_of(c, vm["id"]) == before
    account = await (await c.call("GET", "/api/v1/account", key=ALICE)).json()
    assert account["data"]["credit"] == [{"currency": "EUR", "amount": 250, "vat_free": 0}]
    lightning = await renew(c, ALICE, vm["id"])  # the way the answer names works
    assert lightning["amount"] > 0


async def test_payment_intent_succeeded_of_a_checkout_payment_is_acknowledged_and_books_once(
    world: tuple[ApiClient, FakeStripe],
) -> None:
    """Every Checkout payment also sends `payment_intent.succeeded` for the session's own
    intent, which no payment is stored under (payments are stored under the session id):
    Stripe is asked which session made the intent, and that payment is completed once,
    whichever of the two events comes first. A 404 here would have Stripe retry the event
    for days and, in the end, disable the endpoint."""
    c, fake = world
    for first in ("payment_intent.succeeded", "checkout.session.completed"):
        vm = await order(c, ALICE)
        payment = await renew(c, ALICE, vm["id"], "?method=stripe")
        session_id = payment["data"]["stripe"]["session_id"]
        fake.complete(session_id)
        intent_id = fake.sessions[session_id]["payment_intent"]
        by_kind = {"payment_intent.succeeded": intent_id, "checkout.session.completed": session_id}
        for kind in (first, *by_kind, first):
            assert await deliver(c, fake, kind, by_kind[kind]) == 200, kind
        assert (await shown(c, payment["id"]))["is_paid"] is True
        assert await renewals(c, vm["id"]) == 1
        sub = await subscription_of(c.api, vm["id"])
        assert sub.expires == NOW + timedelta(seconds=MONTH)


async def test_payment_intent_succeeded_of_no_payment_of_ours_is_404(
    world: tuple[ApiClient, FakeStripe],
) -> None:
    """D14 holds for an intent that is really unknown: no payment is stored under it and no
    Checkout Session of ours made it (Stripe lists none for it, or one we never stored)."""
    c, fake = world
    assert await deliver(c, fake, "payment_intent.succeeded", "pi_nobody") == 404
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"], "?method=stripe")
    session_id = payment["data"]["stripe"]["session_id"]
    fake.complete(session_id)
    intent_id = fake.sessions[session_id]["payment_intent"]
    # Stripe says a session we never stored made the intent (another shop on the account)
    fake.sessions["cs_test_not_ours"] = {**fake.sessions.pop(session_id), "id": "cs_test_not_ours"}
    assert await deliver(c, fake, "payment_intent.succeeded", intent_id) == 404
    assert (await shown(c, payment["id"]))["is_paid"] is False


async def admin_notices(c: ApiClient) -> list[SendAdminNotification]:
    jobs = [d.job for d in await c.api.queue.receive(100, 0)]
    return [j for j in jobs if isinstance(j, SendAdminNotification)]


async def test_a_webhook_of_an_order_lapsed_past_the_sweeps_window_is_not_booked(
    world: tuple[ApiClient, FakeStripe], caplog: pytest.LogCaptureFixture
) -> None:
    """The lapsed-order sweep books no order whose quote lapsed more than COMPLETE_WITHIN
    ago (a refunded session still reads `paid`); neither does its webhook (a Stripe retry,
    or a dashboard "resend" of an order refunded by hand): 200, so Stripe stops, the
    payment stays unpaid, and the admins are told once. Within the window it is booked."""
    c, fake = world
    vm = await paid_vm(c, ALICE)
    recent = await renew(c, ALICE, vm["id"], "?method=stripe")
    old = await renew(c, ALICE, vm["id"], "?method=stripe&intervals=2")
    assert old["id"] != recent["id"]
    before = await subscription_of(c.api, vm["id"])
    for payment in (recent, old):
        fake.complete(payment["data"]["stripe"]["session_id"])
    lapsed = c.api.clock.now() + timedelta(hours=1)  # both quotes lapse then
    c.api.clock.set(lapsed + COMPLETE_WITHIN - timedelta(minutes=1))
    await admin_notices(c)
    recent_session = recent["data"]["stripe"]["session_id"]
    assert await deliver(c, fake, "checkout.session.completed", recent_session) == 200
    assert (await shown(c, recent["id"]))["is_paid"] is True
    booked = await subscription_of(c.api, vm["id"])
    assert booked.expires is not None and before.expires is not None
    assert booked.expires > before.expires

    c.api.clock.set(lapsed + COMPLETE_WITHIN + timedelta(minutes=1))
    await admin_notices(c)
    session_id = old["data"]["stripe"]["session_id"]
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            assert await deliver(c, fake, "checkout.session.completed", session_id) == 200
    assert (await shown(c, old["id"]))["is_paid"] is False
    assert await subscription_of(c.api, vm["id"]) == booked
    [notice] = await admin_notices(c)
    assert old["id"] in notice.message and session_id in notice.message
    assert sum(r.getMessage().startswith("OPERATOR:") for r in caplog.records) == 3
