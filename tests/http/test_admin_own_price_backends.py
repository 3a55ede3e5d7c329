"""No admin changes their own subscription's currency or deletes one of its line items (both
lower what they pay), on every storage backend: 403, nothing changed; on another user's
subscription the same requests are done."""

from __future__ import annotations

from typing import Any

from domain.enums import SubscriptionType
from domain.model import LineItem, Subscription
from tests.http.apiapp import ApiClient
from tests.http.backend_apps import ROOT, admin, backend, c, database
from tests.http.vm_helpers import dns_item, paid_vm, subscription_of
from tests.nostr_signing import NostrKey

__all__ = ["admin", "backend", "c", "database"]

ALICE = NostrKey.from_seed(21)
BASE = "/api/admin/v1"


async def _call(admin: ApiClient, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    resp = await admin.call(method, BASE + path, key=ROOT, **kw)
    return resp.status, await resp.json()


async def _with_dns_item(c: ApiClient, key: NostrKey) -> tuple[Subscription, LineItem]:
    """`key`'s paid VM's subscription with a DNS hosting item beside the VM's."""
    vm = await paid_vm(c, key)
    sub = await subscription_of(c.api, vm["id"])
    return sub, await dns_item(c.api, sub.id)


async def _items(c: ApiClient, sub: Subscription) -> list[LineItem]:
    async with c.api.store() as uow:
        return await uow.line_items.list_by_subscription(sub.id)


async def test_no_admin_reprices_their_own_subscription(c: ApiClient, admin: ApiClient) -> None:
    sub, dns = await _with_dns_item(c, ROOT)
    items = await _items(c, sub)
    tries: list[tuple[str, str, dict[str, Any] | None, str]] = [
        (
            "PATCH",
            f"/subscriptions/{sub.id}",
            {"currency": "JPY", "name": "cheap"},
            "move a subscription's expiry or change its price",
        ),
        ("DELETE", f"/subscription_line_items/{dns.id}", None, "delete a subscription's line item"),
    ]
    for method, path, body, what in tries:
        status, answer = await _call(admin, method, path, json=body)
        assert status == 403 and answer["error"].startswith(f"Admins cannot {what} for"), path
    async with c.api.store() as uow:
        assert await uow.subscriptions.get(sub.id) == sub
    assert await _items(c, sub) == items
    # the currency as it is, with the switches that move no money: a plain edit
    same = {"currency": sub.currency, "is_active": True, "auto_renewal_enabled": True}
    assert (await _call(admin, "PATCH", f"/subscriptions/{sub.id}", json=same))[0] == 200


async def test_an_admin_still_reprices_another_users_subscription(
    c: ApiClient, admin: ApiClient
) -> None:
    sub, dns = await _with_dns_item(c, ALICE)
    status, _ = await _call(admin, "DELETE", f"/subscription_line_items/{dns.id}")
    assert status == 200
    status, answer = await _call(
        admin, "PATCH", f"/subscriptions/{sub.id}", json={"currency": "USD"}
    )
    assert status == 200 and answer["data"]["currency"] == "USD"
    assert [i.subscription_type for i in await _items(c, sub)] == [SubscriptionType.VPS]
