"""Racing deliveries of one dispute are recorded and told once, on every storage backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.fiat.stripe import StripeGateway
from adapters.http.app import USER_API_ROUTES
from adapters.http.routes_webhooks import WEBHOOK_SECRETS, WebhookSecrets
from app.billing.admin_notices import notices_of
from app.billing.money_back import MONEY_BACK_KEY
from domain.enums import PaymentMethod
from ports.jobs import SendAdminNotification
from tests.contract.storage_backends import Backend
from tests.fakes.fake_stripe import FakeStripe
from tests.http.apiapp import NOW, ApiClient, api_client, build_api_app
from tests.http.backend_apps import backend, database
from tests.http.vm_helpers import order, renew
from tests.nostr_signing import NostrKey

__all__ = ["backend", "database"]

ALICE = NostrKey.from_seed(23)
SECRET = "whsec_backends"


@pytest.fixture
async def world(backend: Backend) -> AsyncIterator[tuple[ApiClient, FakeStripe]]:
    fake = FakeStripe()
    fake.now = NOW.timestamp()
    async with fake.running() as url:
        gateway = StripeGateway(url, secret_key=fake.secret_key)
        api = build_api_app(
            *USER_API_ROUTES, store=backend.factory, fiat={PaymentMethod.STRIPE: gateway}
        )
        api.app[WEBHOOK_SECRETS] = WebhookSecrets(stripe=SECRET)
        try:
            async with api_client(api) as client:
                yield client, fake
        finally:
            await gateway.aclose()


async def hook(c: ApiClient, fake: FakeStripe, kind: str, object_id: str) -> int:
    body = fake.event(kind, object_id)
    headers = fake.signature(body, SECRET, int(c.api.clock.now().timestamp()))
    return (await c.client.post("/api/v1/webhook/stripe", data=body, headers=headers)).status


async def test_racing_deliveries_of_a_dispute_tell_the_admins_once(
    world: tuple[ApiClient, FakeStripe],
) -> None:
    c, fake = world
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"], "?method=stripe")
    session_id = payment["data"]["stripe"]["session_id"]
    fake.complete(session_id)
    assert await hook(c, fake, "checkout.session.completed", session_id) == 200
    await c.api.queue.receive(100, 0)
    dispute_id = fake.dispute(session_id)
    answers = await asyncio.gather(
        *(hook(c, fake, "charge.dispute.created", dispute_id) for _ in range(4))
    )
    assert answers == [200] * 4
    jobs = [d.job for d in await c.api.queue.receive(100, 0)]
    assert len([j for j in jobs if isinstance(j, SendAdminNotification)]) == 1
    async with c.api.store() as uow:
        stored = await uow.payments.get(bytes.fromhex(payment["id"]))
        history = (await uow.vm_history.list_by_vm(vm["id"], 100)).items
    assert stored is not None and stored.is_paid
    assert len(notices_of(stored)) == 1
    assert sum(isinstance(e.metadata, dict) and MONEY_BACK_KEY in e.metadata for e in history) == 1
