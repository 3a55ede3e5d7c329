"""Disabling or deleting a payment-method config ends its pending payments (D24), and the config
holding a method's only webhook secret is not deleted while its payments could still be paid
(r7 #5): a late webhook is verified and credited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import attrs
from aiohttp.test_utils import TestClient, TestServer

from adapters.http.admin.app import build_admin_app
from adapters.http.routes_webhooks import WEBHOOK_SECRETS, WebhookSecrets
from app.billing.credit_balance import adjust_credit
from domain.enums import PaymentMethod
from domain.model import Company, PaymentMethodConfig, SubscriptionPayment
from tests.http.admin.adminapp import AdminWorld, seed_roles
from tests.http.apiapp import ALICE, NOW, ApiClient, api_client
from tests.http.test_routes_webhooks import (
    is_paid,
    post,
    revolut_event,
    revolut_headers,
    revolut_payment,
)
from tests.http.vm_helpers import build, order, renew, with_revolut
from tests.unit.billing.fakes import FakeGateway

SECRET = "from-config"
WEBHOOK = "/api/v1/webhook/revolut"


@attrs.frozen
class World:
    admin: AdminWorld
    gateway: FakeGateway
    config_id: int


@asynccontextmanager
async def _world(
    in_settings: str | None = None, secret: str | None = SECRET
) -> AsyncIterator[World]:
    """A Revolut rail, a Revolut config of the demo company (its `webhook_secret`: `secret`),
    and `in_settings` as the settings file's Revolut secret, for both APIs."""
    api = build()
    gateway = with_revolut(api)
    secrets = WebhookSecrets(revolut=in_settings) if in_settings else None
    if secrets is not None:
        api.app[WEBHOOK_SECRETS] = secrets
    role_ids = await seed_roles(api)
    async with api_client(api) as user:
        async with api.store() as uow:
            config = await uow.payment_methods.add(
                PaymentMethodConfig(
                    id=0,
                    company_id=user.demo.company,
                    payment_method=PaymentMethod.REVOLUT,
                    name="revolut",
                    enabled=True,
                    provider_type="revolut",
                    config={"webhook_secret": secret} if secret else {},
                    created=NOW,
                    modified=NOW,
                )
            )
            await uow.commit()
        app = build_admin_app(api.services, webhook_secrets=secrets)
        async with TestClient(TestServer(app)) as client:
            admin = AdminWorld(api, user, ApiClient(client, api), role_ids)
            yield World(admin, gateway, config.id)


async def _payment(w: World, payment_id: str) -> SubscriptionPayment:
    async with w.admin.api.store() as uow:
        found = await uow.payments.get(bytes.fromhex(payment_id))
    assert found is not None
    return found


async def _late_webhook(c: ApiClient, secret: str = SECRET) -> Any:
    body = revolut_event("revolut-order-1")
    return await post(c, WEBHOOK, body, revolut_headers(body, secret=secret))


async def test_the_only_secret_is_not_deleted_while_a_payment_could_be_paid() -> None:
    async with _world() as w:
        _, payment = await revolut_payment(w.admin.user)
        resp = await w.admin.call("DELETE", f"/payment_methods/{w.config_id}")
        assert resp.status == 409
        assert (await resp.json())["error"].startswith(
            "Cannot delete this Revolut config: it holds the only webhook signing secret and "
            "1 unpaid Revolut payment(s) could still be paid"
        )
        # nothing changed: the config is there, the payment payable, its webhook verified
        assert (await w.admin.call("GET", f"/payment_methods/{w.config_id}")).status == 200
        assert (await _payment(w, payment["id"])).is_pending(w.admin.api.clock.now())
        assert w.gateway.cancelled == []
        assert (await _late_webhook(w.admin.user)).status == 200
        assert await is_paid(w.admin.user, payment["id"])


async def test_disabling_expires_and_cancels_but_a_late_webhook_is_still_credited() -> None:
    async with _world() as w:
        _, payment = await revolut_payment(w.admin.user)
        path = f"/payment_methods/{w.config_id}"
        await w.admin.ok("PATCH", path, json={"enabled": False})
        stored = await _payment(w, payment["id"])
        assert not stored.is_pending(w.admin.api.clock.now())
        assert w.gateway.cancelled == ["revolut-order-1"]
        # the customer had paid before the cancel reached Revolut: its webhook still verifies
        assert (await _late_webhook(w.admin.user)).status == 200
        assert await is_paid(w.admin.user, payment["id"])


async def test_deleted_once_the_retry_horizon_passed() -> None:
    async with _world() as w:
        _, payment = await revolut_payment(w.admin.user)
        path = f"/payment_methods/{w.config_id}"
        await w.admin.ok("PATCH", path, json={"enabled": False})
        w.admin.api.clock.advance(timedelta(days=3) - timedelta(seconds=1))
        assert (await w.admin.call("DELETE", path)).status == 409  # expired < 3 days ago
        w.admin.api.clock.advance(timedelta(seconds=1))
        await w.admin.ok("DELETE", path)
        assert not await is_paid(w.admin.user, payment["id"])


async def test_a_secret_kept_elsewhere_lets_the_delete_expire_and_cancel() -> None:
    """With the secret in the settings file (or no secret in the row) the delete goes ahead:
    the config's pending payments are expired and cancelled at Revolut."""
    for in_settings, secret in (("from-settings", SECRET), (None, None)):
        async with _world(in_settings=in_settings, secret=secret) as w:
            _, payment = await revolut_payment(w.admin.user)
            await w.admin.ok("DELETE", f"/payment_methods/{w.config_id}")
            stored = await _payment(w, payment["id"])
            assert not stored.is_pending(w.admin.api.clock.now()), in_settings
            assert w.gateway.cancelled == ["revolut-order-1"]
            if in_settings:
                resp = await _late_webhook(w.admin.user, secret=in_settings)
                assert resp.status == 200
                assert await is_paid(w.admin.user, payment["id"])


async def test_a_disabled_method_takes_no_new_invoice_until_enabled_again() -> None:
    """Review r13b: disabling expired the pending invoices, but the next renewal by the same
    method made a new one; a disabled fiat method is not offered (422, nothing stored)."""
    async with _world() as w:
        vm_id, _ = await revolut_payment(w.admin.user)
        async with w.admin.api.store() as uow:
            rows = [
                c.id
                for c in await uow.payment_methods.list_all()
                if c.payment_method is PaymentMethod.REVOLUT
            ]
        assert len(rows) == 2  # the demo's and this world's: both withdrawn
        for row in rows:
            await w.admin.ok("PATCH", f"/payment_methods/{row}", json={"enabled": False})
        path = f"/payment_methods/{w.config_id}"
        async with w.admin.api.store() as uow:
            before = (await uow.payments.list_by_vm(vm_id, 100)).total
        resp = await w.admin.user.call("GET", f"/api/v1/vm/{vm_id}/renew?method=revolut")
        assert resp.status == 422
        assert (await resp.json())["error"] == "Revolut is not offered for this service any more"
        async with w.admin.api.store() as uow:
            assert (await uow.payments.list_by_vm(vm_id, 100)).total == before
        await w.admin.ok("PATCH", path, json={"enabled": True})
        again = await w.admin.user.call("GET", f"/api/v1/vm/{vm_id}/renew?method=revolut")
        assert again.status == 200, await again.text()


async def test_the_only_secret_in_another_companys_row_is_kept_for_this_ones_order() -> None:
    """Review r15: every company's orders are made on the one provider account of the
    settings file's keys, so the account's secret may sit in any company's row: while the
    demo company's order could be paid, another company's row holding the only secret is
    not deleted (409), and the order's webhook is still verified and credited."""
    async with _world(secret=None) as w:  # the demo company's row keeps no secret
        _, payment = await revolut_payment(w.admin.user)
        async with w.admin.api.store() as uow:
            other = await uow.companies.add(Company(id=0, created=NOW, name="Other"))
            row = await uow.payment_methods.add(
                PaymentMethodConfig(
                    id=0,
                    company_id=other.id,
                    payment_method=PaymentMethod.REVOLUT,
                    name="other revolut",
                    enabled=True,
                    provider_type="revolut",
                    config={"webhook_secret": SECRET},
                    created=NOW,
                    modified=NOW,
                )
            )
            await uow.commit()
        assert (await w.admin.call("DELETE", f"/payment_methods/{row.id}")).status == 409
        assert (await _late_webhook(w.admin.user)).status == 200
        assert await is_paid(w.admin.user, payment["id"])


async def test_disabling_a_lightning_row_withdraws_no_invoice() -> None:
    """Lightning is the server's own node: its config row only lists it (and a disabled row
    hides it from the method list), so its pending invoices stay payable."""
    async with _world() as w:
        async with w.admin.api.store() as uow:
            row = await uow.payment_methods.add(
                PaymentMethodConfig(
                    id=0,
                    company_id=w.admin.user.demo.company,
                    payment_method=PaymentMethod.LIGHTNING,
                    name="lightning",
                    enabled=True,
                    provider_type="lnd",
                    config={},
                    created=NOW,
                    modified=NOW,
                )
            )
            await uow.commit()
        vm = await order(w.admin.user, ALICE)
        payment = await renew(w.admin.user, ALICE, vm["id"])
        await w.admin.ok("PATCH", f"/payment_methods/{row.id}", json={"enabled": False})
        assert (await _payment(w, payment["id"])).is_pending(w.admin.api.clock.now())


async def test_a_quote_the_balance_pays_whole_asks_no_rail_and_is_not_refused() -> None:
    """Review r15: with every Revolut config disabled, a renewal naming Revolut that the
    account balance pays whole asks no rail: it is booked (200), while one that would make
    a Revolut order is refused (422)."""
    async with _world() as w:
        c = w.admin.user
        vm_id, _ = await revolut_payment(c)
        async with w.admin.api.store() as uow:
            rows = [
                x.id
                for x in await uow.payment_methods.list_all()
                if x.payment_method is PaymentMethod.REVOLUT
            ]
            vm = await uow.vms.get(vm_id)
        assert vm is not None
        for row in rows:
            await w.admin.ok("PATCH", f"/payment_methods/{row}", json={"enabled": False})
        path = f"/api/v1/vm/{vm_id}/renew?method=revolut&intervals=2"
        assert (await c.call("GET", path)).status == 422
        await adjust_credit(
            w.admin.api.store,
            w.admin.api.clock,
            admin_id=vm.user_id,
            user_id=vm.user_id,
            currency="EUR",
            amount=10_000_000,
            note="goodwill",
        )
        covered = await c.call("GET", path)
        assert covered.status == 200, await covered.text()
        assert (await covered.json())["data"]["is_paid"] is True
