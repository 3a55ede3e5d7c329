"""GET /api/v1/subscriptions/{id}/ip_ranges shows the range a payment was given; a full IP
space refuses the order with 422 and says why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.http.apiapp import ALICE, BOB, ApiClient, api_client
from tests.http.vm_helpers import build, settle

SUBS = "/api/v1/subscriptions"


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


async def test_an_order_for_a_full_space_is_refused_with_422(c: ApiClient) -> None:
    full = await _order(c, c.demo.ip4_tier_23, c.demo.ip4_tier_23)  # the whole /22, unpaid
    assert full.status == 200, await full.text()
    refused = await _order(c, c.demo.ip4_tier_24, key=BOB)
    assert (refused.status, await refused.json()) == (
        422,
        {
            "error": "No free /24 range is left in this IP space: try again later or choose "
            "another size"
        },
    )
