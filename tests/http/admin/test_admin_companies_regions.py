"""Admin companies and regions: trimming, currencies, counts, delete and disable rules."""

from __future__ import annotations

from typing import Any

import pytest

from domain.model import IpAssignment
from tests.http.admin import catalogue_bodies as b
from tests.http.admin.adminapp import AdminWorld
from tests.http.vm_helpers import paid_vm
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(41)


async def test_company_create_trims_and_defaults_then_patch_clears(world: AdminWorld) -> None:
    data = (await world.ok("POST", "/companies", json=b.company()))["data"]
    assert data["name"] == "Acme Hosting" and data["city"] == "Dublin"
    assert data["tax_id"] is None and data["email"] is None
    assert data["base_currency"] == "USD" and data["region_count"] == 0
    path = f"/companies/{data['id']}"
    patched = (await world.ok("PATCH", path, json={"city": " ", "email": "a@b.c"}))["data"]
    assert patched["city"] is None and patched["email"] == "a@b.c"
    assert patched["name"] == "Acme Hosting"
    listed = await world.ok("GET", "/companies")
    assert listed["total"] == 2
    assert (await world.ok("GET", path))["data"] == patched
    demo = (await world.ok("GET", f"/companies/{world.user.demo.company}"))["data"]
    assert demo["region_count"] == 2
    assert (await world.ok("DELETE", path)) == {"data": None}
    assert (await world.call("GET", path)).status == 404


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "missing field `name`"),
        ({"name": "  "}, "Company name is required"),
        ({"name": "A", "base_currency": "XYZ"}, "Supported currencies: EUR, USD"),
        ({"name": "A" * 101}, "at most 100 characters"),
        ({"name": "A", "country_code": "IRLX"}, "at most 3 characters"),
        ({"name": 5}, "must be a string"),
    ],
)
async def test_bad_company_is_400(world: AdminWorld, body: dict[str, Any], fragment: str) -> None:
    resp = await world.call("POST", "/companies", json=body)
    assert resp.status == 400
    assert fragment in (await resp.json())["error"]
    assert (await world.ok("GET", "/companies"))["total"] == 1


async def test_company_patch_refuses_blank_name_and_currency(world: AdminWorld) -> None:
    path = f"/companies/{world.user.demo.company}"
    for body, text in (
        ({"name": " "}, "Company name cannot be empty"),
        ({"base_currency": ""}, "Base currency cannot be empty"),
    ):
        resp = await world.call("PATCH", path, json=body)
        assert resp.status == 400 and (await resp.json())["error"] == text


async def test_company_with_regions_is_not_deleted(world: AdminWorld) -> None:
    resp = await world.call("DELETE", f"/companies/{world.user.demo.company}")
    assert resp.status == 422
    assert "2 assigned regions" in (await resp.json())["error"]
    assert (await world.ok("GET", "/companies"))["total"] == 1


async def test_region_stats_count_hosts_live_vms_and_their_addresses(world: AdminWorld) -> None:
    demo = world.user.demo
    vm = await paid_vm(world.user, ALICE)
    async with world.api.store() as uow:
        for ip, deleted in (("10.9.0.5", False), ("10.9.0.6", True)):
            await uow.ip_assignments.add(
                IpAssignment(
                    id=0, vm_id=vm["id"], ip_range_id=demo.ip4_range, ip=ip, deleted=deleted
                )
            )
        await uow.commit()
    data = (await world.ok("GET", f"/regions/{demo.region}"))["data"]
    assert data == {
        "id": demo.region,
        "name": "Dublin",
        "enabled": True,
        "company_id": demo.company,
        "host_count": 1,
        "total_vms": 1,
        "total_cpu_cores": 16,
        "total_memory_bytes": 64 * 1024**3,
        "total_ip_assignments": 1,
    }
    stats = (await world.ok("GET", f"/regions/{demo.region}/stats"))["data"]
    assert stats == {"total_hosts": 1, "total_vms": 1}
    listed = await world.ok("GET", "/regions?enabled=false")
    assert [r["name"] for r in listed["data"]] == ["Closed"]
    assert (await world.call("GET", "/regions?enabled=maybe")).status == 400


async def test_region_create_update_and_disable(world: AdminWorld) -> None:
    demo = world.user.demo
    made = (await world.ok("POST", "/regions", json=b.region(demo)))["data"]
    assert made["host_count"] == 0 and made["company_id"] == demo.company
    path = f"/regions/{made['id']}"
    assert (await world.ok("PATCH", path, json={"name": " Lyon "}))["data"]["name"] == "Lyon"
    resp = await world.ok("DELETE", path)
    assert resp["data"] == {"success": True, "message": "Region disabled successfully"}
    default = await world.ok("POST", "/regions", json={"name": "Oslo", "company_id": None})
    assert default["data"]["company_id"] == demo.company and default["data"]["enabled"]
    assert (await world.ok("GET", path))["data"]["enabled"] is False


async def test_region_with_hosts_is_not_disabled(world: AdminWorld) -> None:
    resp = await world.call("DELETE", f"/regions/{world.user.demo.region}")
    assert resp.status == 422
    assert (await resp.json())["error"] == "Cannot delete region with 1 assigned hosts"
    assert (await world.ok("GET", f"/regions/{world.user.demo.region}"))["data"]["enabled"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "R", "company_id": 999}, 422),
        ({"name": "R", "company_id": "1"}, 400),
        ({"name": "", "company_id": 1}, 400),
        ({"name": "R", "company_id": 1, "enabled": "yes"}, 400),
        ({"name": "R", "company_id": -1}, 400),
    ],
)
async def test_bad_region_is_refused(world: AdminWorld, body: dict[str, Any], status: int) -> None:
    resp = await world.call("POST", "/regions", json=body)
    assert resp.status == status, await resp.text()
    assert (await world.ok("GET", "/regions"))["total"] == 2
    patch = await world.call(
        "PATCH", f"/regions/{world.user.demo.region}", json={"company_id": 999}
    )
    assert patch.status == 422
