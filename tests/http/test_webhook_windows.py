"""Issue 8 §5: a correctly signed webhook outside its provider's time window is 401 and changes
nothing; the provider's freshly signed retry completes the payment, once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.http.auth import AUTHENTICATOR, Authenticator
from adapters.http.routes_webhooks import WEBHOOK_SECRETS, WebhookSecrets
from adapters.memory.clock import FakeClock
from domain.enums import PaymentMethod
from lnvps.serve import webhook_secrets
from lnvps.settings import SettingsError, load_settings
from tests.http.apiapp import ALICE, NOW, ApiClient, api_client
from tests.http.test_routes_webhooks import (
    MONTH,
    REVOLUT_SECRET,
    STRIPE_SECRET,
    add_stripe_payment,
    is_paid,
    post,
    revolut_event,
    revolut_headers,
    revolut_payment,
    stripe_event,
    stripe_headers,
)
from tests.http.vm_helpers import build, order, subscription_of, with_revolut


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    api = build()
    with_revolut(api)
    api.app[WEBHOOK_SECRETS] = WebhookSecrets(revolut=REVOLUT_SECRET, stripe=STRIPE_SECRET)
    async with api_client(api) as client:
        yield client


def revolut_at(body: bytes, c: ApiClient, offset: timedelta) -> dict[str, str]:
    millis = int((c.api.clock.now() + offset).timestamp() * 1000)
    return revolut_headers(body, ts=str(millis))


async def test_a_stale_or_future_revolut_delivery_is_401_and_the_fresh_retry_pays_once(
    c: ApiClient,
) -> None:
    vm_id, payment = await revolut_payment(c)
    body = revolut_event("revolut-order-1")
    for offset in (timedelta(minutes=-10), timedelta(seconds=-301), timedelta(seconds=301)):
        resp = await post(c, "/api/v1/webhook/revolut", body, revolut_at(body, c, offset))
        assert resp.status == 401, offset
        assert await resp.json() == {"error": "Invalid webhook signature"}
        assert await is_paid(c, payment["id"]) is False
    assert (await subscription_of(c.api, vm_id)).expires is None
    edge = await post(
        c, "/api/v1/webhook/revolut", body, revolut_at(body, c, timedelta(seconds=-300))
    )
    assert edge.status == 200 and await is_paid(c, payment["id"]) is True
    c.api.clock.advance(timedelta(minutes=2))  # Revolut retries: signed afresh
    retry = await post(c, "/api/v1/webhook/revolut", body, revolut_at(body, c, timedelta()))
    assert retry.status == 200
    assert (await subscription_of(c.api, vm_id)).expires == NOW + timedelta(seconds=MONTH)


async def test_a_stale_or_future_stripe_delivery_is_401_and_the_fresh_retry_pays_once(
    c: ApiClient,
) -> None:
    vm = await order(c, ALICE)
    payment_id = (await add_stripe_payment(c, vm["id"])).hex()
    body = stripe_event("pi_123")
    now = int(c.api.clock.now().timestamp())
    for when in (now - 600, now - 301, now + 301):
        resp = await post(c, "/api/v1/webhook/stripe", body, stripe_headers(body, when))
        assert resp.status == 401, when
    assert await is_paid(c, payment_id) is False
    resp = await post(c, "/api/v1/webhook/stripe", body, stripe_headers(body, now - 300))
    assert resp.status == 200
    c.api.clock.advance(timedelta(minutes=1))  # Stripe retries: signed afresh
    resp = await post(c, "/api/v1/webhook/stripe", body, stripe_headers(body, now + 60))
    assert resp.status == 200
    assert await is_paid(c, payment_id) is True
    assert (await subscription_of(c.api, vm["id"])).expires == NOW + timedelta(seconds=MONTH)


async def test_the_windows_are_configurable_per_provider() -> None:
    api = build()
    with_revolut(api)
    api.app[WEBHOOK_SECRETS] = WebhookSecrets(revolut=REVOLUT_SECRET, revolut_tolerance_s=900)
    async with api_client(api) as c:
        _, payment = await revolut_payment(c)
        body = revolut_event("revolut-order-1")
        old = revolut_at(body, c, timedelta(minutes=-10))
        assert (await post(c, "/api/v1/webhook/revolut", body, old)).status == 200
        assert await is_paid(c, payment["id"]) is True


def test_settings_carry_the_windows_with_the_documented_defaults(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "revolut: {token: t, webhook-secret: w}\n"
        "stripe: {secret-key: s, webhook-secret: w, webhook-tolerance: 120}\n"
    )
    secrets = webhook_secrets(load_settings(config, {}))
    revolut, stripe = PaymentMethod.REVOLUT, PaymentMethod.STRIPE
    assert (secrets.tolerance_for(revolut, None), secrets.tolerance_for(stripe, None)) == (300, 120)
    assert webhook_secrets(load_settings(None, {})).tolerance_for(revolut, 300) == 300
    config.write_text("revolut: {token: t, webhook-tolerance: 0}\n")
    with pytest.raises(SettingsError):
        load_settings(config, {})


async def test_the_window_is_judged_by_the_real_clock_not_a_moved_business_clock() -> None:
    """A dev server's business clock may be moved forward; providers sign with real time, as
    NIP-98 clients do, so the request clock (the authenticator's) decides."""
    api = build()
    with_revolut(api)
    api.app[WEBHOOK_SECRETS] = WebhookSecrets(revolut=REVOLUT_SECRET)
    real = FakeClock(NOW)
    api.app[AUTHENTICATOR] = Authenticator(api.store, real)
    async with api_client(api) as c:
        _, payment = await revolut_payment(c)
        real.advance(timedelta(days=1))  # the business clock (c.api.clock) stays behind
        body = revolut_event("revolut-order-1")
        business = await post(c, "/api/v1/webhook/revolut", body, revolut_at(body, c, timedelta()))
        assert business.status == 401
        resp = await post(
            c, "/api/v1/webhook/revolut", body, revolut_at(body, c, timedelta(days=1))
        )
        assert resp.status == 200
        async with c.api.store() as uow:
            stored = await uow.payments.get(bytes.fromhex(payment["id"]))
        assert stored is not None and stored.is_paid
