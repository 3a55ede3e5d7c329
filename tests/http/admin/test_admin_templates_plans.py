"""Admin cost plans and VM templates: validation, plan made with a template, delete rules."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.admin import catalogue_bodies as b
from tests.http.admin.adminapp import AdminWorld
from tests.http.vm_helpers import paid_vm
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(43)
GIB = 1024**3


async def test_cost_plan_crud(world: AdminWorld) -> None:
    made = (await world.ok("POST", "/cost_plans", json=b.cost_plan()))["data"]
    assert made["name"] == "Small" and made["currency"] == "EUR"
    assert made["interval_type"] == "month" and made["template_count"] == 0
    listed = (await world.ok("GET", "/cost_plans"))["data"]
    assert listed[0]["id"] == made["id"]  # newest first
    path = f"/cost_plans/{made['id']}"
    patched = (await world.ok("PATCH", path, json={"amount": 650}))["data"]
    assert patched["amount"] == 650 and patched["name"] == "Small"
    deleted = await world.ok("DELETE", path)
    assert deleted["data"] == {"success": True, "message": "Cost plan deleted successfully"}
    assert (await world.call("GET", path)).status == 404


async def test_template_count_counts_enabled_templates(world: AdminWorld) -> None:
    plan = (await world.ok("GET", f"/cost_plans/{world.user.demo.tiny_plan}"))["data"]
    assert plan["template_count"] == 2  # Tiny and Closed; Retired is disabled


async def test_plan_in_use_is_not_deleted(world: AdminWorld) -> None:
    resp = await world.call("DELETE", f"/cost_plans/{world.user.demo.tiny_plan}")
    assert resp.status == 422
    assert (await resp.json())["error"] == (
        "Cannot delete cost plan: 3 VM templates are using this cost plan"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": " "}, "Cost plan name cannot be empty"),
        ({"currency": ""}, "Currency cannot be empty"),
        ({"currency": "DOGE"}, "Unsupported currency: DOGE"),
        ({"interval_amount": 0}, "Interval amount cannot be zero"),
        ({"interval_type": "week"}, "interval_type must be one of: day, month, year"),
        ({"amount": -1}, "amount must be a whole number"),
        ({"amount": 2**64}, "amount must be a whole number"),
    ],
)
async def test_bad_cost_plan_is_400(
    world: AdminWorld, change: dict[str, Any], message: str
) -> None:
    resp = await world.call("POST", "/cost_plans", json={**b.cost_plan(), **change})
    assert resp.status == 400
    assert message in (await resp.json())["error"]
    assert (await world.ok("GET", "/cost_plans"))["total"] == 3


async def test_template_with_existing_plan(world: AdminWorld) -> None:
    demo = world.user.demo
    made = (
        await world.ok(
            "POST", "/vm_templates", json=b.template(demo, disk_iops_read=500, cpu_limit=1.5)
        )
    )["data"]
    assert made["cost_plan_id"] == demo.tiny_plan and made["cost_plan_name"] == "Tiny"
    assert made["region_name"] == "Dublin" and made["active_vm_count"] == 0
    assert made["disk_iops_read"] == 500 and made["cpu_limit"] == 1.5
    assert "disk_iops_write" not in made and "cpu_mfg" not in made
    assert made["expires"] is None and made["enabled"] is True
    path = f"/vm_templates/{made['id']}"
    patched = (
        await world.ok(
            "PATCH",
            path,
            json={"disk_iops_read": None, "cpu_mfg": "intel", "expires": "2030-01-01T00:00:00Z"},
        )
    )["data"]
    assert "disk_iops_read" not in patched and patched["cpu_limit"] == 1.5
    assert patched["cpu_mfg"] == "intel" and patched["expires"].startswith("2030-01-01T00:00:00")


async def test_template_without_plan_makes_one(world: AdminWorld) -> None:
    body = b.template(world.user.demo, cost_plan_amount=990, cost_plan_currency="gbp")
    del body["cost_plan_id"]
    made = (await world.ok("POST", "/vm_templates", json=body))["data"]
    assert made["cost_plan_name"] == "Medium Cost Plan"
    plan = (await world.ok("GET", f"/cost_plans/{made['cost_plan_id']}"))["data"]
    assert plan["amount"] == 990 and plan["currency"] == "GBP"
    assert plan["interval_amount"] == 1 and plan["interval_type"] == "month"
    del body["cost_plan_amount"]
    resp = await world.call("POST", "/vm_templates", json=body)
    assert resp.status == 400
    assert (await resp.json())["error"] == (
        "cost_plan_amount is required when cost_plan_id is not provided"
    )
    deleted = await world.ok("DELETE", f"/vm_templates/{made['id']}")
    assert deleted["data"]["message"] == (
        "VM template and associated cost plan deleted successfully"
    )
    assert (await world.call("GET", f"/cost_plans/{made['cost_plan_id']}")).status == 404


async def test_template_patch_edits_its_shared_plan_in_place(world: AdminWorld) -> None:
    demo = world.user.demo
    resp = await world.ok("PATCH", f"/vm_templates/{demo.tiny}", json={"cost_plan_amount": 300})
    assert resp["data"]["cost_plan_id"] == demo.tiny_plan
    plan = (await world.ok("GET", f"/cost_plans/{demo.tiny_plan}"))["data"]
    assert plan["amount"] == 300
    bad = await world.call(
        "PATCH", f"/vm_templates/{demo.tiny}", json={"cost_plan_interval_amount": 0}
    )
    assert bad.status == 400
    assert (await bad.json())["error"] == "Cost plan interval amount cannot be zero"


async def test_template_used_by_a_vm_is_not_deleted(world: AdminWorld) -> None:
    demo = world.user.demo
    await paid_vm(world.user, ALICE)
    info = (await world.ok("GET", f"/vm_templates/{demo.tiny}"))["data"]
    assert info["active_vm_count"] == 1
    resp = await world.call("DELETE", f"/vm_templates/{demo.tiny}")
    assert resp.status == 422
    assert (await resp.json())["error"] == (
        "Cannot delete VM template: 1 VMs are using this template"
    )
    unused = await world.ok("DELETE", f"/vm_templates/{demo.retired}")
    assert unused["data"]["message"] == "VM template deleted successfully"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"region_id": 999}, 422),
        ({"cost_plan_id": 999}, 422),
        ({"cpu": 0}, 400),
        ({"cpu": 256}, 400),
        ({"disk_type": "nvme"}, 400),
        ({"expires": "tomorrow"}, 400),
        ({"cpu_limit": 0}, 400),
        ({"network_mbps": -5}, 400),
        ({"name": ""}, 400),
        ({"memory": None}, 400),
    ],
)
async def test_bad_template_is_refused(
    world: AdminWorld, change: dict[str, Any], status: int
) -> None:
    resp = await world.call("POST", "/vm_templates", json=b.template(world.user.demo, **change))
    assert resp.status == status, await resp.text()
    assert (await world.ok("GET", "/vm_templates"))["total"] == 5
