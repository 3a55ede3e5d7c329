"""Admin IP space: CIDR and prefix checks, pricing within the space, sold-range listing."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from domain.enums import SubscriptionType
from domain.model import IpRangeSubscription, LineItem, Subscription
from tests.http.admin import catalogue_bodies as b
from tests.http.admin.adminapp import AdminWorld
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(45)


async def test_space_create_defaults_to_the_first_company(world: AdminWorld) -> None:
    made = (await world.ok("POST", "/ip_space", json=b.space()))["data"]
    assert made == {
        "id": made["id"],
        "company_id": world.user.demo.company,
        "cidr": "203.0.113.0/24",
        "min_prefix_size": 24,
        "max_prefix_size": 24,
        "registry": {"value": 1, "name": "RIPE"},
        "external_id": "ripe-1",
        "is_available": True,
        "is_reserved": False,
        "metadata": {"asn": 64500},
        "pricing_count": 0,
    }
    listed = (await world.ok("GET", "/ip_space"))["data"]
    assert listed[0]["id"] == made["id"]  # newest first
    only_arin = (await world.ok("GET", "/ip_space?registry=0"))["data"]
    assert [s["cidr"] for s in only_arin] == ["2a13:2c1::/32"]
    path = f"/ip_space/{made['id']}"
    patched = (
        await world.ok(
            "PATCH", path, json={"external_id": None, "metadata": None, "is_available": False}
        )
    )["data"]
    assert patched["external_id"] is None and patched["metadata"] is None
    assert (await world.ok("GET", "/ip_space?is_available=false"))["total"] == 1
    assert (await world.ok("DELETE", path)) == {"data": None}


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"cidr": " "}, 400, "CIDR is required"),
        ({"cidr": "203.0.113.7/24"}, 400, "Invalid CIDR format"),
        ({"cidr": "not-a-net"}, 400, "Invalid CIDR format"),
        ({"registry": 5}, 400, "Invalid registry value"),
        ({"min_prefix_size": 23}, 400, "min_prefix_size must be greater than or equal"),
        (
            {"min_prefix_size": 26, "max_prefix_size": 25},
            400,
            "max_prefix_size /25 is too small for BGP announcement (RIR minimum: /24)",
        ),
        (
            {"cidr": "203.0.113.0/24", "max_prefix_size": 22, "min_prefix_size": 24},
            400,
            "max_prefix_size /22 cannot be larger than parent CIDR /24",
        ),
        (
            {"cidr": "2001:db8::/32", "min_prefix_size": 129, "max_prefix_size": 40},
            400,
            "min_prefix_size /129 exceeds maximum /128",
        ),
        (
            {"cidr": "185.18.224.0/22", "min_prefix_size": 24, "max_prefix_size": 22},
            409,
            "already exists",
        ),
        ({"company_id": 999}, 422, "Company 999 not found"),
        ({"metadata": {"x": "y" * 20_000}}, 400, "metadata must be at most"),
    ],
)
async def test_bad_space_is_refused(
    world: AdminWorld, change: dict[str, Any], status: int, message: str
) -> None:
    resp = await world.call("POST", "/ip_space", json={**b.space(), **change})
    assert resp.status == status, await resp.text()
    assert message in (await resp.json())["error"]
    assert (await world.ok("GET", "/ip_space"))["total"] == 3


async def test_patch_rechecks_the_merged_space(world: AdminWorld) -> None:
    resp = await world.call(
        "PATCH", f"/ip_space/{world.user.demo.ip4_space}", json={"max_prefix_size": 25}
    )
    assert resp.status == 400
    space = (await world.ok("GET", f"/ip_space/{world.user.demo.ip4_space}"))["data"]
    assert space["max_prefix_size"] == 22


OVERLAP = "overlaps VM address range"


@pytest.mark.parametrize(
    ("cidr", "low", "high", "pool"),
    [
        ("185.18.220.0/22", 24, 22, "185.18.221.0/25"),
        ("2a13:2c0::/40", 48, 40, "2a13:2c0::/64"),
    ],
    ids=["ipv4", "ipv6"],
)
async def test_a_space_over_a_vm_address_range_is_refused_and_nothing_saved(
    world: AdminWorld, cidr: str, low: int, high: int, pool: str
) -> None:
    """(r5) A space holding a region's VM address range sold blocks containing other
    customers' VM addresses: created or moved there, it is refused with 409, even while
    the range is disabled (its VMs keep their addresses)."""
    demo = world.user.demo
    body = {**b.space(), "cidr": cidr, "min_prefix_size": low, "max_prefix_size": high}
    async with world.api.store() as uow:
        for range_id in (demo.ip4_range, demo.ip6_range):
            found = await uow.ip_ranges.get(range_id)
            assert found is not None
            await uow.ip_ranges.update(attrs.evolve(found, enabled=False))
        await uow.commit()
    made = await world.call("POST", "/ip_space", json=body)
    assert made.status == 409, await made.text()
    assert (await made.json())["error"] == (
        f"IP space {cidr} overlaps VM address range {pool} of region {demo.region}: its "
        "addresses are given to VMs and cannot be sold"
    )
    space_id = demo.ip4_space if ":" not in cidr else demo.ip6_space
    moved = await world.call("PATCH", f"/ip_space/{space_id}", json=body)
    assert moved.status == 409, await moved.text()
    assert OVERLAP in (await moved.json())["error"]
    listed = (await world.ok("GET", "/ip_space"))["data"]
    assert sorted(s["cidr"] for s in listed) == ["10.0.0.0/16", "185.18.224.0/22", "2a13:2c1::/32"]


async def test_a_space_over_a_vm_range_from_before_the_rule_can_still_be_withdrawn(
    world: AdminWorld,
) -> None:
    """A space stored over a VM range before the rule (an adopted database) keeps its
    CIDR: an edit of its other fields is saved, so the operator can stop its sales."""
    demo = world.user.demo
    async with world.api.store() as uow:
        space = await uow.ip_spaces.get(demo.ip4_space)
        assert space is not None
        await uow.ip_spaces.update(attrs.evolve(space, cidr="185.18.220.0/22"))
        await uow.commit()
    path = f"/ip_space/{demo.ip4_space}"
    patched = (await world.ok("PATCH", path, json={"is_available": False}))["data"]
    assert (patched["cidr"], patched["is_available"]) == ("185.18.220.0/22", False)


async def test_pricing_of_a_space(world: AdminWorld) -> None:
    demo = world.user.demo
    base = f"/ip_space/{demo.ip4_space}/pricing"
    listed = await world.ok("GET", base)
    assert [p["prefix_size"] for p in listed["data"]] == [23, 24]  # id desc
    assert listed["data"][0]["cidr"] == "185.18.224.0/22"
    made = (
        await world.ok(
            "POST", base, json={"prefix_size": 22, "price_per_month": 50_000, "currency": "usd"}
        )
    )["data"]
    assert made["currency"] == "USD" and made["setup_fee"] == 0
    one = f"{base}/{made['id']}"
    assert (await world.ok("PATCH", one, json={"setup_fee": 100}))["data"]["setup_fee"] == 100
    assert (await world.ok("GET", f"/ip_space/{demo.ip4_space}"))["data"]["pricing_count"] == 3
    assert (await world.ok("DELETE", one)) == {"data": None}
    assert (await world.call("GET", one)).status == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"prefix_size": 25, "price_per_month": 1}, 400, "Prefix size must be between /22 and /24"),
        ({"prefix_size": 24, "price_per_month": 0}, 400, "price_per_month cannot be 0"),
        (
            {"prefix_size": 24, "price_per_month": 5},
            409,
            "Pricing already exists for prefix size /24",
        ),
        (
            {"prefix_size": 22, "price_per_month": 5, "currency": ""},
            400,
            "Currency cannot be empty",
        ),
    ],
)
async def test_bad_pricing_is_refused(
    world: AdminWorld, body: dict[str, Any], status: int, message: str
) -> None:
    base = f"/ip_space/{world.user.demo.ip4_space}/pricing"
    resp = await world.call("POST", base, json=body)
    assert resp.status == status, await resp.text()
    assert message in (await resp.json())["error"]
    assert (await world.ok("GET", base))["total"] == 2


async def test_another_spaces_pricing_is_not_reachable_through_this_space(
    world: AdminWorld,
) -> None:
    demo = world.user.demo
    path = f"/ip_space/{demo.ip4_space}/pricing/{demo.ip6_tier}"
    for method, body in (("GET", None), ("PATCH", {"setup_fee": 1}), ("DELETE", None)):
        resp = await world.call(method, path, json=body)
        assert resp.status == 404
        assert (await resp.json())["error"] == "Pricing does not belong to the specified IP space"
    still = await world.ok("GET", f"/ip_space/{demo.ip6_space}/pricing/{demo.ip6_tier}")
    assert still["data"]["setup_fee"] == 0


async def _sell(world: AdminWorld, cidr: str, active: bool) -> tuple[int, int]:
    demo = world.user.demo
    user_id = await world.user.user_id(ALICE)
    now = world.api.clock.now()
    async with world.api.store() as uow:
        sub, items = await uow.subscriptions.add_with_line_items(
            Subscription(
                id=0,
                user_id=user_id,
                company_id=demo.company,
                name="IP",
                created=now,
                currency="EUR",
            ),
            [
                LineItem(
                    id=0,
                    subscription_id=0,
                    subscription_type=SubscriptionType.IP_RANGE,
                    name="range",
                    amount=15_000,
                )
            ],
        )
        await uow.ip_range_subscriptions.add(
            IpRangeSubscription(
                id=0,
                subscription_line_item_id=items[0].id,
                available_ip_space_id=demo.ip4_space,
                created=now,
                cidr=cidr,
                is_active=active,
                started_at=now,
                ended_at=None if active else now,
            )
        )
        await uow.commit()
    return sub.id, user_id


async def test_sold_ranges_list_and_block_the_delete(world: AdminWorld) -> None:
    demo = world.user.demo
    sub_id, user_id = await _sell(world, "185.18.224.0/24", True)
    await _sell(world, "185.18.225.0/24", False)
    base = f"/ip_space/{demo.ip4_space}/subscriptions"
    listed = await world.ok("GET", base)
    assert [r["cidr"] for r in listed["data"]] == ["185.18.225.0/24", "185.18.224.0/24"]
    first = listed["data"][1]
    assert first["subscription_id"] == sub_id and first["user_id"] == user_id
    assert first["parent_cidr"] == "185.18.224.0/22" and first["ended_at"] is None
    active = await world.ok("GET", f"{base}?is_active=true")
    assert [r["cidr"] for r in active["data"]] == ["185.18.224.0/24"]
    assert (await world.ok("GET", f"{base}?user_id={user_id + 1}"))["total"] == 0
    resp = await world.call("DELETE", f"/ip_space/{demo.ip4_space}")
    assert resp.status == 422
    assert (await resp.json())["error"] == (
        "Cannot delete IP space with active subscriptions. Please cancel subscriptions first."
    )
    assert (await world.ok("GET", f"/ip_space/{demo.ip4_space}"))["data"]["pricing_count"] == 2
