"""Review r7: a line item's `configuration` decides the IP block a range sale gives; editing
its `prefix_size` or `available_ip_space_id` is a price change (own-account 403, pending
quotes expired), refused outright once a block was given (422); on every storage backend."""

from __future__ import annotations

from typing import Any

from domain.model import LineItem
from tests.http.apiapp import ApiClient
from tests.http.backend_apps import ROOT, admin, backend, c, database
from tests.http.vm_helpers import settle
from tests.nostr_signing import NostrKey

__all__ = ["admin", "backend", "c", "database"]

ALICE = NostrKey.from_seed(22)
BASE = "/api/admin/v1"
SUBS = "/api/v1/subscriptions"


async def _range_order(c: ApiClient, key: NostrKey) -> tuple[int, dict[str, Any], LineItem]:
    """`key`'s /24 order, its pending quote and its line item."""
    items = [{"type": "ip_range", "ip_space_pricing_id": c.demo.ip4_tier_24}]
    resp = await c.call("POST", SUBS, key=key, json={"line_items": items})
    assert resp.status == 200, await resp.text()
    sub_id = (await resp.json())["data"]["id"]
    resp = await c.call("GET", f"{SUBS}/{sub_id}/renew", key=key)
    assert resp.status == 200, await resp.text()
    async with c.api.store() as uow:
        [item] = await uow.line_items.list_by_subscription(sub_id)
    return sub_id, (await resp.json())["data"], item


def _bigger(item: LineItem) -> dict[str, Any]:
    assert isinstance(item.configuration, dict) and item.configuration["prefix_size"] == 24
    return {"configuration": {**item.configuration, "prefix_size": 22}}


async def _patch(admin: ApiClient, item: LineItem, body: dict[str, Any]) -> tuple[int, Any]:
    resp = await admin.call(
        "PATCH", f"{BASE}/subscription_line_items/{item.id}", key=ROOT, json=body
    )
    return resp.status, await resp.json()


async def _pending(c: ApiClient, payment_hex: str) -> bool:
    async with c.api.store() as uow:
        p = await uow.payments.get(bytes.fromhex(payment_hex))
    assert p is not None
    return not p.is_paid and p.expires > c.api.clock.now()


async def test_no_admin_enlarges_their_own_ip_range_order(c: ApiClient, admin: ApiClient) -> None:
    """The proof: a /24 order edited to a /22 by its owner, the /24 quote paid, a /22 given."""
    _, pay, item = await _range_order(c, ROOT)
    for body in (
        _bigger(item),
        {"configuration": {**item.configuration, "available_ip_space_id": 999}},
    ):
        status, answer = await _patch(admin, item, body)
        assert status == 403, answer
        assert answer["error"].startswith("Admins cannot change a subscription's price for")
    async with c.api.store() as uow:
        assert await uow.line_items.get(item.id) == item
    assert await _pending(c, pay["id"])
    # what sells nothing else stays free: the tier's id, the name
    same = {"configuration": {**item.configuration, "ip_space_pricing_id": 1}, "name": "mine"}
    assert (await _patch(admin, item, same))[0] == 200


async def test_another_users_order_is_resized_and_its_quote_ended(
    c: ApiClient, admin: ApiClient
) -> None:
    sub_id, pay, item = await _range_order(c, ALICE)
    status, answer = await _patch(admin, item, _bigger(item))
    assert status == 200, answer
    assert answer["data"]["configuration"]["prefix_size"] == 22
    assert not await _pending(c, pay["id"])  # the /24 quote no longer buys the /22
    resp = await c.call("GET", f"{SUBS}/{sub_id}/renew", key=ALICE)
    assert resp.status == 200, await resp.text()
    assert (await settle(c.api, (await resp.json())["data"]["id"])).completed
    resp = await c.call("GET", f"{SUBS}/{sub_id}/ip_ranges", key=ALICE)
    assert [r["cidr"].endswith("/22") for r in (await resp.json())["data"]] == [True]


async def test_an_allocated_range_keeps_what_it_sells(c: ApiClient, admin: ApiClient) -> None:
    """The record must say what the customer holds: a paid /24 is not relabelled a /22."""
    sub_id, pay, item = await _range_order(c, ALICE)
    assert (await settle(c.api, pay["id"])).completed
    async with c.api.store() as uow:
        item = await uow.line_items.get(item.id) or item
    status, answer = await _patch(admin, item, {**_bigger(item), "amount": 1})
    assert status == 422 and "given an IP range already" in answer["error"], answer
    async with c.api.store() as uow:
        assert await uow.line_items.get(item.id) == item
    resp = await c.call("GET", f"{SUBS}/{sub_id}/ip_ranges", key=ALICE)
    assert [r["cidr"].endswith("/24") for r in (await resp.json())["data"]] == [True]
    # its price still moves
    assert (await _patch(admin, item, {"amount": item.amount + 1}))[0] == 200
