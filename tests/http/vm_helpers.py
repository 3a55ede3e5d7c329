"""Helpers for the VM, payment, invoice, LNURL, upgrade and webhook route tests."""

from __future__ import annotations

import base64
import struct
from typing import Any, cast

import attrs

from adapters.http.context import SERVICES
from adapters.http.routes_invoice import add_invoice_routes
from adapters.http.routes_lnurl import add_lnurl_routes
from adapters.http.routes_payments import add_payment_routes
from adapters.http.routes_upgrades import add_upgrade_routes
from adapters.http.routes_vms import add_vm_routes
from adapters.http.routes_webhooks import add_webhook_routes
from app.billing.completion import CompletionReport, complete_payment
from app.billing.rails import PaymentRails
from domain.enums import PaymentMethod, SubscriptionType
from domain.model import PLACEHOLDER_MAC, LineItem, SshKey, Subscription, User, Vm
from lnvps.container import WEBHOOKS
from tests.http.apiapp import DEFAULT_ROUTES, ApiApp, ApiClient, build_api_app
from tests.nostr_signing import NostrKey
from tests.unit.billing.fakes import FakeGateway

ROUTES = (
    *DEFAULT_ROUTES,
    add_vm_routes,
    add_payment_routes,
    add_invoice_routes,
    add_lnurl_routes,
    add_upgrade_routes,
    add_webhook_routes,
)


def build(**kw: Any) -> ApiApp:
    """The user API with every route (account, catalogue, subscriptions and ours)."""
    return build_api_app(*ROUTES, **kw)


def with_revolut(api: ApiApp) -> FakeGateway:
    """Give the app a Revolut rail backed by a fake gateway (before the server starts)."""
    gateway = FakeGateway()
    api.services = attrs.evolve(
        api.services,
        rails=PaymentRails(
            lightning=api.node, fiat={PaymentMethod.REVOLUT: gateway}, webhooks=WEBHOOKS
        ),
    )
    api.app[SERVICES] = api.services
    return gateway


def ssh_public_key(seed: int = 1) -> str:
    """A well-formed ssh-ed25519 public key line."""
    name = b"ssh-ed25519"
    blob = struct.pack(">I", len(name)) + name + struct.pack(">I", 32) + bytes([seed]) * 32
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} test@lnvps"


async def user_of(api: ApiApp, key: NostrKey) -> User:
    async with api.store() as uow:
        user = await uow.users.get_or_create_by_pubkey(key.pubkey, api.clock.now())
        await uow.commit()
    return user


async def add_key(api: ApiApp, key: NostrKey, name: str = "laptop") -> SshKey:
    user = await user_of(api, key)
    async with api.store() as uow:
        stored = await uow.ssh_keys.add(
            SshKey(
                id=0,
                name=name,
                user_id=user.id,
                created=api.clock.now(),
                key_data=ssh_public_key(user.id),
            )
        )
        await uow.commit()
    return stored


async def order(c: ApiClient, key: NostrKey, **extra: Any) -> dict[str, Any]:
    """Order the demo's Tiny template (EUR 2.70 a month) with a fresh SSH key."""
    ssh = await add_key(c.api, key)
    body = {"template_id": c.demo.tiny, "image_id": c.demo.ubuntu, "ssh_key_id": ssh.id, **extra}
    resp = await c.call("POST", "/api/v1/vm", key=key, json=body)
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def renew(c: ApiClient, key: NostrKey, vm_id: int, query: str = "") -> dict[str, Any]:
    resp = await c.call("GET", f"/api/v1/vm/{vm_id}/renew{query}", key=key)
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def settle(api: ApiApp, payment_hex: str) -> CompletionReport:
    """What the settlement listener does for a paid Lightning invoice."""
    svc = api.services
    await api.node.settle(bytes.fromhex(payment_hex))
    return await complete_payment(
        svc.uow_factory, svc.clock, svc.rails, svc.queue, payment_id=bytes.fromhex(payment_hex)
    )


async def paid_vm(c: ApiClient, key: NostrKey, *, provisioned: bool = True) -> dict[str, Any]:
    """An ordered, paid and (by default) provisioned VM: the worker's spawn is simulated by
    giving the VM a real MAC and creating it on the dummy host."""
    vm = await order(c, key)
    payment = await renew(c, key, vm["id"])
    await settle(c.api, payment["id"])
    if provisioned:
        await provision(c.api, vm["id"])
    return vm


async def provision(api: ApiApp, vm_id: int) -> Vm:
    store = api.store
    async with store() as uow:
        vm = await uow.vms.get(vm_id)
        assert vm is not None and vm.mac_address == PLACEHOLDER_MAC
        vm = attrs.evolve(vm, mac_address="bc:24:11:aa:bb:cc")
        await uow.vms.update(vm)
        await uow.commit()
    return vm


async def subscription_of(api: ApiApp, vm_id: int) -> Subscription:
    async with api.store() as uow:
        vm = await uow.vms.get(vm_id)
        assert vm is not None
        sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
        assert sub is not None
    return sub


async def dns_item(api: ApiApp, subscription_id: int) -> LineItem:
    """A DNS hosting item (EUR 5.00 a month) added beside a subscription's others: nothing
    depends on it (no VM, no IP range), so an admin may delete it unless a rule says no."""
    async with api.store() as uow:
        # the port adds line items only with their subscription; both stores' repos can
        item = await cast(Any, uow.line_items).add(
            LineItem(
                id=0,
                subscription_id=subscription_id,
                subscription_type=SubscriptionType.DNS_HOSTING,
                name="dns.example",
                amount=500,
            )
        )
        await uow.commit()
    return cast(LineItem, item)
