"""GET /api/v1/subscriptions/{id}/ip_ranges shows the range a payment was given; a full IP
space refuses the order with 422 and says why, and unpaid orders hold only part of a space
(D25)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.http.apiapp import ALICE, BOB, ApiClient, api_client
from tests.http.vm_helpers import build, settle
from tests.nostr_signing import NostrKey

SUBS = "/api/v1/subscriptions"
FREE_KEY = NostrKey.from_seed(9898)


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    async with api_client(build()) as client:
        yield client


async def _order(c: ApiClient, *tiers: int, key: Any = ALICE) -> Any:
    items = [{"type": "ip_range", "ip_space_pricing_id": t} for t in tiers]
    return await c.call("POST", SUBS, key=key, json={"line_items": items})


async def _ranges(c: ApiClient, sub_id: int, key: Any = ALICE) -> Any:
    return await c.call("GET", f"{SUBS}/{sub_id}/ip_ranges", key=key)


async def test_the_owner_sees_the_range_its_payment_was_given(c: ApiClient) -> None:
    resp = await _order(c, c.demo.ip4_tier_24)
    assert resp.status == 200, await resp.text()
    sub_id = (await resp.json())["data"]["id"]
    before = await _ranges(c, sub_id)
    assert (before.status, await before.json()) == (
        200,
        {"data": [], "total": 0, "limit": 50, "offset": 0},
    )
    pay = (await (await c.call("GET", f"{SUBS}/{sub_id}/renew")).json())["data"]
    assert (await settle(c.api, pay["id"])).completed

    page = await (await _ranges(c, sub_id)).json()
    [given] = page["data"]
    assert page["total"] == 1
    assert given == {
        "id": given["id"],
        "cidr": "185.18.224.0/24",
        "is_active": True,
        "started_at": given["started_at"],
        "ended_at": None,
        "parent_cidr": "185.18.224.0/22",
    }
    other = await _ranges(c, sub_id, key=BOB)
    assert (other.status, await other.json()) == (404, {"error": "Subscription not found"})


FULL = "No free /24 range is left in this IP space: try again later or choose another size"


async def _paid(c: ApiClient, tier: int, key: Any) -> None:
    resp = await _order(c, tier, key=key)
    assert resp.status == 200, await resp.text()
    sub_id = (await resp.json())["data"]["id"]
    pay = (await (await c.call("GET", f"{SUBS}/{sub_id}/renew", key=key)).json())["data"]
    assert (await settle(c.api, pay["id"])).completed


async def test_an_order_for_a_space_full_of_paid_blocks_is_refused_with_422(c: ApiClient) -> None:
    """The /22 is sold out to four payers (one /24 each, each paid before the next order,
    as unpaid orders may hold only part of a space): a fifth buyer is refused."""
    for seed in range(4):
        await _paid(c, c.demo.ip4_tier_24, NostrKey.from_seed(6100 + seed))
    refused = await _order(c, c.demo.ip4_tier_24, key=BOB)
    assert (refused.status, await refused.json()) == (422, {"error": FULL})


async def test_one_free_key_cannot_hold_a_whole_ip_space(c: ApiClient) -> None:
    """(r5) One key, one request, never paid, held every block of the space for its payment
    window (and again every hour). Now one user's unpaid orders hold at most a /24 of IPv4
    (`max-unpaid-ip-room`): the grab is refused, saying why, and nothing is written."""
    grab = await _order(c, *[c.demo.ip4_tier_24] * 4, key=FREE_KEY)
    assert (grab.status, await grab.json()) == (
        422,
        {
            "error": "Your unpaid orders would hold 1024 IPv4 addresses (at most 256: one /24):"
            " pay for an order, choose a smaller range, or wait until unpaid orders are"
            " removed (one hour after ordering)"
        },
    )
    assert (await _order(c, c.demo.ip4_tier_24, key=FREE_KEY)).status == 200
    second = await _order(c, c.demo.ip4_tier_24, key=FREE_KEY)  # the key's second /24
    assert second.status == 422 and "at most 256" in (await second.json())["error"]
    async with c.api.store() as uow:
        user = await uow.users.get_or_create_by_pubkey(FREE_KEY.pubkey, c.api.clock.now())
        assert (await uow.subscriptions.list_by_user(user.id, 10)).total == 1
    assert (await _order(c, c.demo.ip4_tier_24, key=BOB)).status == 200


async def test_unpaid_orders_of_many_keys_hold_at_most_half_of_a_space(c: ApiClient) -> None:
    """`unpaid-ip-space-share` (50 %): two keys' unpaid /24s hold half of the /22, so a third
    key is refused as from a full space, though two /24s are free; once one of them is
    paid, its block is the payer's and no longer counts, so the third can order."""
    first, second = NostrKey.from_seed(6201), NostrKey.from_seed(6202)
    held = await _order(c, c.demo.ip4_tier_24, key=first)
    assert held.status == 200
    assert (await _order(c, c.demo.ip4_tier_24, key=second)).status == 200
    refused = await _order(c, c.demo.ip4_tier_24, key=BOB)
    assert (refused.status, await refused.json()) == (422, {"error": FULL})
    sub_id = (await held.json())["data"]["id"]
    pay = (await (await c.call("GET", f"{SUBS}/{sub_id}/renew", key=first)).json())["data"]
    assert (await settle(c.api, pay["id"])).completed
    assert (await _order(c, c.demo.ip4_tier_24, key=BOB)).status == 200
