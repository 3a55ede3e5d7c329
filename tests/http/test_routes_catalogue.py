"""Public catalogue routes against the seeded memory app: exact shapes, offers, prices, IP space."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import attrs
import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.http.app import build_user_app
from adapters.http.openapi import documented_operations, served_operations
from app.billing.ordering import OrderTerms, order_custom_vm, order_vm
from domain.enums import DiskInterface, DiskType, PaymentMethod
from domain.model import GIB, CustomPricingDisk, IpAssignment
from domain.unpaid_ip_room import NO_UNPAID_IP_LIMITS
from domain.unpaid_room import NO_UNPAID_ROOM_LIMITS
from tests.http.apiapp import ApiClient, api_client, build_api_app

PRICE = "/api/v1/vm/custom-template/price"
SPEC = {
    "pricing_id": 1,
    "cpu": 2,
    "memory": 2 * GIB,
    "disk": 20 * GIB,
    "disk_type": "ssd",
    "disk_interface": "pcie",
}
CATALOGUE_OPS = {
    ("GET", "/api/v1/image"),
    ("GET", "/api/v1/vm/templates"),
    ("POST", "/api/v1/vm/custom-template/price"),
    ("GET", "/api/v1/payment/methods"),
    ("GET", "/api/v1/ip_space"),
    ("GET", "/api/v1/ip_space/{id}"),
}


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    async with api_client(build_api_app()) as client:
        yield client


async def get_data(c: ApiClient, path: str) -> Any:
    resp = await c.call("GET", path, signed=False)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    return (await resp.json())["data"]


# --- images -------------------------------------------------------------------------------------


async def test_images_lists_enabled_images_with_exact_fields(c: ApiClient) -> None:
    images = await get_data(c, "/api/v1/image")
    assert images == [
        {
            "id": c.demo.ubuntu,
            "distribution": "ubuntu",
            "flavour": "Server",
            "version": "24.04",
            "release_date": "2024-04-25T00:00:00Z",
            "default_username": "ubuntu",
        },
        {
            "id": c.demo.debian,
            "distribution": "debian",
            "flavour": "Server",
            "version": "12",
            "release_date": "2023-06-30T00:00:00Z",
            "default_username": None,
        },
    ]


async def test_public_routes_ignore_an_empty_authorization_header(c: ApiClient) -> None:
    resp = await c.call("GET", "/api/v1/image", signed=False, headers={"Authorization": ""})
    assert resp.status == 200
    head = await c.call("HEAD", "/api/v1/vm/templates", signed=False)
    assert head.status == 200


# --- templates ----------------------------------------------------------------------------------


async def test_templates_list_orderable_offers_with_exact_shapes(c: ApiClient) -> None:
    data = await get_data(c, "/api/v1/vm/templates")
    assert list(data) == ["templates", "custom_template"]
    tiny, yearly = data["templates"]
    assert tiny == {
        "id": c.demo.tiny,
        "name": "Tiny",
        "created": "2026-05-18T10:00:00Z",
        "cpu": 1,
        "memory": GIB,
        "disk_size": 40 * GIB,
        "disk_type": "ssd",
        "disk_interface": "pcie",
        "cost_plan": {
            "id": c.demo.tiny_plan,
            "name": "Tiny",
            "currency": "EUR",
            "amount": 270,
            "other_price": [
                {"currency": "BTC", "amount": 2_700_000},
                {"currency": "USD", "amount": 297},
                {"currency": "GBP", "amount": 230},
            ],
            "interval_amount": 1,
            "interval_type": "month",
        },
        "region": {"id": c.demo.region, "name": "Dublin"},
    }
    assert "expires" not in tiny and "cpu_mfg" not in tiny and "cpu_features" not in tiny
    assert yearly["expires"] == "2027-06-17T10:00:00Z"
    assert (yearly["cpu_mfg"], yearly["cpu_arch"], yearly["cpu_features"]) == (
        "amd",
        "x86_64",
        ["AVX2"],
    )
    assert (yearly["disk_type"], yearly["disk_interface"]) == ("hdd", "sata")
    plan = yearly["cost_plan"]
    assert (plan["currency"], plan["interval_type"]) == ("BTC", "year")
    # a BTC price converts into every fiat with a rate, and is not rounded to sats
    assert plan["other_price"] == [
        {"currency": "EUR", "amount": 100_000},
        {"currency": "USD", "amount": 110_000},
        {"currency": "GBP", "amount": 85_000},
    ]


async def test_templates_leave_out_disabled_closed_and_too_big_offers(c: ApiClient) -> None:
    data = await get_data(c, "/api/v1/vm/templates")
    ids = {t["id"] for t in data["templates"]}
    assert ids == {c.demo.tiny, c.demo.yearly}
    assert {c.demo.huge, c.demo.retired, c.demo.closed}.isdisjoint(ids)


async def test_custom_template_entries_are_capped_by_host_room(c: ApiClient) -> None:
    """By the room a new (unpaid) order may take: half of the 16-CPU, 64 GiB host with a
    2000 GiB SSD and a 4000 GiB HDD (the default D25 host share); the SSD's pricing caps
    it at 1000 GiB first."""
    [custom] = (await get_data(c, "/api/v1/vm/templates"))["custom_template"]
    assert custom == {
        "id": c.demo.custom,
        "name": "Dublin custom",
        "region": {"id": c.demo.region, "name": "Dublin"},
        "max_cpu": 8,
        "min_cpu": 1,
        "min_memory": GIB,
        "max_memory": 32 * GIB,
        "disks": [
            {
                "min_disk": 10 * GIB,
                "max_disk": 1000 * GIB,
                "disk_type": "ssd",
                "disk_interface": "pcie",
            },
            {
                "min_disk": 10 * GIB,
                "max_disk": 2000 * GIB,
                "disk_type": "hdd",
                "disk_interface": "sata",
            },
        ],
    }


async def test_a_full_host_empties_both_lists_but_custom_template_stays_an_array(
    c: ApiClient,
) -> None:
    user_id, key_id = await c.user_id(), await c.ssh_key_id()
    whole = OrderTerms(  # an order may fill the host only without the D25 host share
        user_id=user_id,
        image_id=c.demo.ubuntu,
        ssh_key_id=key_id,
        unpaid_room=NO_UNPAID_ROOM_LIMITS,
    )
    await order_custom_vm(
        c.api.store,
        c.api.clock,
        whole,
        c.demo.custom,
        16,
        8 * GIB,
        100 * GIB,
        DiskType.SSD,
        DiskInterface.PCIE,
    )
    data = await get_data(c, "/api/v1/vm/templates")
    assert data == {"templates": [], "custom_template": []}


async def test_a_region_with_no_ipv4_address_for_a_new_order_offers_nothing(
    c: ApiClient,
) -> None:
    """Every order needs an IPv4 address of its region, and is refused (422) when the ones
    left are promised: neither templates nor custom pricings are offered there (the
    reference only hid the custom pricings)."""
    async with c.api.store() as uow:
        ip4 = await uow.ip_ranges.get(c.demo.ip4_range)
        assert ip4 is not None
        # a /30 keeps one address besides network, broadcast and gateway
        await uow.ip_ranges.update(attrs.evolve(ip4, cidr="185.18.221.0/30"))
        await uow.commit()
    data = await get_data(c, "/api/v1/vm/templates")
    assert [t["id"] for t in data["templates"]] == [c.demo.tiny, c.demo.yearly]
    assert len(data["custom_template"]) == 1
    user_id, key_id = await c.user_id(), await c.ssh_key_id()
    vm = await order_vm(  # an unpaid order in its hour is promised the last address
        c.api.store,
        c.api.clock,
        OrderTerms(user_id=user_id, image_id=c.demo.ubuntu, ssh_key_id=key_id),
        c.demo.tiny,
    )
    assert await get_data(c, "/api/v1/vm/templates") == {"templates": [], "custom_template": []}
    async with c.api.store() as uow:  # built: it holds the address
        await uow.ip_assignments.add(
            IpAssignment(id=0, vm_id=vm.id, ip_range_id=c.demo.ip4_range, ip="185.18.221.2")
        )
        await uow.commit()
    assert await get_data(c, "/api/v1/vm/templates") == {"templates": [], "custom_template": []}
    async with c.api.store() as uow:
        await uow.ip_ranges.update(attrs.evolve(ip4, cidr="185.18.221.0/29"))
        await uow.commit()
    data = await get_data(c, "/api/v1/vm/templates")
    assert [t["id"] for t in data["templates"]] == [c.demo.tiny, c.demo.yearly]
    async with c.api.store() as uow:
        await uow.ip_ranges.update(attrs.evolve(ip4, enabled=False))
        await uow.commit()
    assert await get_data(c, "/api/v1/vm/templates") == {"templates": [], "custom_template": []}


async def test_other_price_is_empty_without_fresh_rates_and_the_listing_still_works(
    c: ApiClient,
) -> None:
    c.api.clock.advance(timedelta(seconds=301))  # the fixed rates go stale
    data = await get_data(c, "/api/v1/vm/templates")
    assert [t["cost_plan"]["other_price"] for t in data["templates"]] == [[], []]
    await c.api.refresh_rates()
    data = await get_data(c, "/api/v1/vm/templates")
    assert data["templates"][0]["cost_plan"]["other_price"]


# --- custom price calculator --------------------------------------------------------------------


async def test_custom_price_is_monthly_in_the_pricing_currency(c: ApiClient) -> None:
    resp = await c.call("POST", PRICE, json=SPEC, signed=False)
    assert resp.status == 200
    # 2×100 cpu + 2×50 memory + 20×5 disk + 200 IPv4 + 10 IPv6
    assert await resp.json() == {"data": {"currency": "EUR", "amount": 610}}


async def test_custom_price_accepts_integral_floats_and_ignores_cpu_hints(c: ApiClient) -> None:
    body = {**SPEC, "cpu": 2.0, "memory": float(2 * GIB), "cpu_mfg": "amd", "cpu_feature": ["AVX2"]}
    resp = await c.call("POST", PRICE, json=body, signed=False)
    assert (await resp.json())["data"]["amount"] == 610


@pytest.mark.parametrize(
    ("change", "status", "needle"),
    [
        ({"cpu": 33}, 400, "CPU must be between 1 and 32"),
        ({"cpu": 0}, 400, "CPU must be between"),
        ({"memory": GIB // 2}, 400, "memory must be between"),
        ({"memory": 129 * GIB}, 400, "memory must be between"),
        ({"disk": 5 * GIB}, 400, "disk size must be between"),
        ({"disk": 1001 * GIB}, 400, "disk size must be between"),
        ({"disk_interface": "sata"}, 400, "no SSD disk with interface SATA"),
        ({"memory": 2 * GIB - 1}, 400, "memory must be a whole number of GiB"),
        ({"disk": 21 * GIB - 1}, 400, "disk must be a whole number of GiB"),
        ({"disk": 20 * 10**9}, 400, "disk must be a whole number of GiB"),
        ({"disk_type": "nvme"}, 400, "disk_type"),
        ({"cpu": "2"}, 400, "cpu"),
        ({"cpu": True}, 400, "cpu"),
        ({"memory": -1}, 400, "memory"),
        ({"pricing_id": 999}, 404, "Custom pricing not found"),
    ],
)
async def test_custom_price_refusals(
    c: ApiClient, change: dict[str, Any], status: int, needle: str
) -> None:
    resp = await c.call("POST", PRICE, json={**SPEC, **change}, signed=False)
    assert resp.status == status
    assert needle in (await resp.json())["error"]


async def test_custom_price_body_rules(c: ApiClient) -> None:
    missing = await c.call(
        "POST", PRICE, json={k: v for k, v in SPEC.items() if k != "disk"}, signed=False
    )
    assert (missing.status, await missing.json()) == (400, {"error": "missing field `disk`"})
    not_object = await c.call("POST", PRICE, json=[SPEC], signed=False)
    assert not_object.status == 400
    bad_json = await c.call(
        "POST", PRICE, data=b"{", signed=False, headers={"Content-Type": "application/json"}
    )
    assert bad_json.status == 400
    no_type = await c.call("POST", PRICE, data=b"{}", signed=False)
    assert no_type.status == 415


async def test_custom_price_bills_the_disk_at_the_row_of_its_interface(c: ApiClient) -> None:
    # an SSD/SATA row added after the SSD/PCIe one (higher id), 100× dearer and smaller
    async with c.api.store() as uow:
        await uow.custom_pricing.add_disk(
            CustomPricingDisk(
                id=0,
                pricing_id=1,  # SPEC's pricing
                kind=DiskType.SSD,
                interface=DiskInterface.SATA,
                cost=500,
                min_disk_size=10 * GIB,
                max_disk_size=100 * GIB,
            )
        )
        await uow.commit()
    sata = {**SPEC, "disk_interface": "sata"}
    resp = await c.call("POST", PRICE, json=sata, signed=False)
    assert resp.status == 200, await resp.text()
    # 2×100 cpu + 2×50 memory + 20×500 disk (not the PCIe row's 5) + 200 IPv4 + 10 IPv6
    assert (await resp.json())["data"] == {"currency": "EUR", "amount": 10_510}
    too_big = await c.call("POST", PRICE, json={**sata, "disk": 200 * GIB}, signed=False)
    assert too_big.status == 400  # the SATA row's 100 GiB limit, not the PCIe row's 1000
    assert "between 10 GiB and 100 GiB" in (await too_big.json())["error"]
    pcie = await c.call("POST", PRICE, json=SPEC, signed=False)
    assert (await pcie.json())["data"]["amount"] == 610


# --- payment methods ----------------------------------------------------------------------------


async def test_payment_methods_list_enabled_configs_then_nwc_and_lnurl(c: ApiClient) -> None:
    assert await get_data(c, "/api/v1/payment/methods") == [
        {"name": "lightning", "currencies": ["BTC"]},
        {
            "name": "revolut",
            "currencies": ["EUR", "USD"],
            "processing_fee_rate": 1.0,
            "processing_fee_base": 20,
            "processing_fee_currency": "EUR",
        },
        {"name": "nwc", "currencies": ["BTC"]},
        {"name": "lnurl", "currencies": ["BTC"]},
    ]


async def test_without_an_enabled_lightning_config_there_is_no_nwc_or_lnurl(
    c: ApiClient,
) -> None:
    async with c.api.store() as uow:
        for config in await uow.payment_methods.list_all():
            if config.payment_method is PaymentMethod.LIGHTNING:
                await uow.payment_methods.update(attrs.evolve(config, enabled=False))
        await uow.commit()
    methods = await get_data(c, "/api/v1/payment/methods")
    assert [m["name"] for m in methods] == ["revolut"]


async def test_no_configs_no_methods() -> None:
    async with api_client(build_api_app(), seed=False) as client:
        assert await get_data(client, "/api/v1/payment/methods") == []
        assert await get_data(client, "/api/v1/vm/templates") == {
            "templates": [],
            "custom_template": [],
        }


# --- IP space -----------------------------------------------------------------------------------


async def test_ip_space_page_lists_available_spaces_newest_first(c: ApiClient) -> None:
    resp = await c.call("GET", "/api/v1/ip_space", signed=False)
    body = await resp.json()
    assert list(body) == ["data", "total", "limit", "offset"]
    assert (body["total"], body["limit"], body["offset"]) == (2, 50, 0)
    ip6, ip4 = body["data"]
    assert (ip6["id"], ip4["id"]) == (c.demo.ip6_space, c.demo.ip4_space)
    assert list(ip4) == [
        "id",
        "min_prefix_size",
        "max_prefix_size",
        "registry",
        "ip_version",
        "pricing",
    ]
    assert (ip4["min_prefix_size"], ip4["max_prefix_size"], ip4["registry"], ip4["ip_version"]) == (
        24,
        22,
        "ripe",
        "ipv4",
    )
    assert (ip6["registry"], ip6["ip_version"]) == ("arin", "ipv6")
    assert "cidr" not in ip4
    tier = next(t for t in ip4["pricing"] if t["id"] == c.demo.ip4_tier_24)
    assert tier == {
        "id": c.demo.ip4_tier_24,
        "prefix_size": 24,
        "price": {"currency": "EUR", "amount": 15_000},
        "setup_fee": {"currency": "EUR", "amount": 5_000},
        "other_price": [
            {"currency": "BTC", "amount": 150_000_000},
            {"currency": "USD", "amount": 16_500},
            {"currency": "GBP", "amount": 12_750},
        ],
        "other_setup_fee": [
            {"currency": "BTC", "amount": 50_000_000},
            {"currency": "USD", "amount": 5_500},
            {"currency": "GBP", "amount": 4_250},
        ],
    }


async def test_ip_space_paging_clamps_and_validates(c: ApiClient) -> None:
    page = await (await c.call("GET", "/api/v1/ip_space?limit=1&offset=1", signed=False)).json()
    assert ([s["id"] for s in page["data"]], page["total"], page["limit"], page["offset"]) == (
        [c.demo.ip4_space],
        2,
        1,
        1,
    )
    big = await (await c.call("GET", "/api/v1/ip_space?limit=1000", signed=False)).json()
    assert big["limit"] == 100
    past = await (await c.call("GET", "/api/v1/ip_space?offset=10", signed=False)).json()
    assert (past["data"], past["total"]) == ([], 2)
    bad = await c.call("GET", "/api/v1/ip_space?limit=abc", signed=False)
    assert bad.status == 400 and "error" in await bad.json()


async def test_ip_space_by_id(c: ApiClient) -> None:
    one = await get_data(c, f"/api/v1/ip_space/{c.demo.ip4_space}")
    # the /23 tier is past what one unpaid order may hold: not offered (test below)
    assert one["id"] == c.demo.ip4_space and [t["id"] for t in one["pricing"]] == [
        c.demo.ip4_tier_24
    ]
    for hidden in (c.demo.reserved_space, 999):
        resp = await c.call("GET", f"/api/v1/ip_space/{hidden}", signed=False)
        assert (resp.status, await resp.json()) == (404, {"error": "IP space not available"})
    overflow = await c.call("GET", "/api/v1/ip_space/99999999999999999999999", signed=False)
    assert overflow.status == 404  # no such id can exist
    letters = await c.call("GET", "/api/v1/ip_space/abc", signed=False)
    assert (letters.status, await letters.json()) == (400, {"error": "Invalid id: abc"})


async def test_ip_space_prices_without_rates_have_no_conversions(c: ApiClient) -> None:
    c.api.clock.advance(timedelta(minutes=10))
    one = await get_data(c, f"/api/v1/ip_space/{c.demo.ip4_space}")
    assert all(t["other_price"] == [] == t["other_setup_fee"] for t in one["pricing"])


# --- OpenAPI --------------------------------------------------------------------------------------


async def test_openapi_documents_exactly_the_served_catalogue_routes() -> None:
    from adapters.http.routes_catalogue import add_catalogue_routes

    api = build_api_app(add_catalogue_routes)
    async with api_client(api, seed=False) as client:
        doc = await (await client.call("GET", "/openapi.json", signed=False)).json()
    served = served_operations(api.app)
    assert documented_operations(doc) == served
    assert served - {("GET", "/openapi.json")} == CATALOGUE_OPS
    params = doc["paths"]["/api/v1/ip_space/{id}"]["get"]["parameters"]
    assert params[0]["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    assert "security" not in doc["paths"]["/api/v1/vm/templates"]["get"]


async def _tier_sizes(client: Any, space_id: int) -> tuple[list[int], list[int]]:
    """The prefix sizes the space offers in the list and on its own page."""
    listed = (await (await client.get("/api/v1/ip_space")).json())["data"]
    in_list = next(s for s in listed if s["id"] == space_id)["pricing"]
    alone = (await (await client.get(f"/api/v1/ip_space/{space_id}")).json())["data"]["pricing"]
    return [t["prefix_size"] for t in in_list], [t["prefix_size"] for t in alone]


async def test_ip_space_tiers_no_new_order_can_take_are_not_offered(c: ApiClient) -> None:
    """Every new IP-range order is unpaid: a block larger than one user's unpaid orders may
    hold (`max-unpaid-ip-room`, a /24 of IPv4 by default) is always refused (422), so the
    catalogue does not offer it, as it hides regions with no address; with the limits off
    the /23 is offered again (the order's own check still decides)."""
    assert await _tier_sizes(c.client, c.demo.ip4_space) == ([24], [24])

    services = attrs.evolve(c.api.services, unpaid_ip_room=NO_UNPAID_IP_LIMITS)
    async with TestClient(TestServer(build_user_app(services))) as open_shop:
        assert await _tier_sizes(open_shop, c.demo.ip4_space) == ([23, 24], [23, 24])
