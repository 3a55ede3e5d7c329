"""Admin hosts and disks: kind wire names, secrets never echoed, load, disk ownership."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from domain.enums import VmHostKind
from tests.http.admin import catalogue_bodies as b
from tests.http.admin.adminapp import AdminWorld
from tests.http.vm_helpers import paid_vm
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(42)
GIB = 1024**3


async def test_create_keeps_the_token_and_key_out_of_every_answer(world: AdminWorld) -> None:
    body = b.host(world.user.demo)
    resp = await world.call("POST", "/hosts", json=body)
    text = await resp.text()
    assert resp.status == 200, text
    assert "s3cr3t" not in text and "PRIVATE KEY" not in text
    data = (await resp.json())["data"]
    assert data["kind"] == "proxmox" and data["region"]["name"] == "Dublin"
    assert data["load_cpu"] == 2.5 and data["ssh_key_configured"] is True
    assert data["cpu_features"] == ["AVX2", "AES"] and data["cpu_mfg"] == "amd"
    assert "cpu_arch" not in data and data["disks"] == []
    for path in ("/hosts", f"/hosts/{data['id']}"):
        assert "s3cr3t" not in await (await world.call("GET", path)).text()
    async with world.api.store() as uow:
        stored = await uow.hosts.get(data["id"])
    assert stored is not None and stored.api_token == body["api_token"]
    assert stored.load_cpu == Decimal("2.5") and stored.kind is VmHostKind.PROXMOX


async def test_kinds_use_their_wire_names_and_mock_is_the_dummy(world: AdminWorld) -> None:
    demo = (await world.ok("GET", f"/hosts/{world.user.demo.host}"))["data"]
    assert demo["kind"] == "mock"
    made = (await world.ok("POST", "/hosts", json={**b.host(world.user.demo), "kind": "libvirt"}))[
        "data"
    ]
    assert made["kind"] == "libvirt"
    patched = await world.ok(
        "PATCH", f"/hosts/{made['id']}", json={"kind": "mock", "api_token": "t"}
    )
    assert patched["data"]["kind"] == "mock"


async def test_load_counts_the_live_vms_on_the_host(world: AdminWorld) -> None:
    await paid_vm(world.user, ALICE)
    data = (await world.ok("GET", f"/hosts/{world.user.demo.host}"))["data"]
    load = data["calculated_load"]
    assert load["active_vms"] == 1
    assert load["cpu_load"] == pytest.approx(1 / 16)
    assert load["memory_load"] == pytest.approx(1 / 64)
    assert load["available_cpu"] == 15 and load["available_memory"] == 63 * GIB
    assert load["overall_load"] == pytest.approx(1 / 16)
    assert len(data["disks"]) == 2


async def test_patch_without_token_keeps_it_and_clears_the_ssh_key(world: AdminWorld) -> None:
    made = (await world.ok("POST", "/hosts", json=b.host(world.user.demo)))["data"]
    path = f"/hosts/{made['id']}"
    patched = (await world.ok("PATCH", path, json={"ssh_key": None, "mtu": 9000, "cpu_mfg": None}))[
        "data"
    ]
    assert patched["ssh_key_configured"] is False and patched["mtu"] == 9000
    assert "cpu_mfg" not in patched
    async with world.api.store() as uow:
        stored = await uow.hosts.get(made["id"])
    assert stored is not None and isinstance(stored.api_token, str)
    assert stored.api_token.endswith("s3cr3t")


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({"kind": "vmware"}, 400, "kind must be one of: proxmox, libvirt, mock"),
        ({"region_id": 999}, 422, "Region 999 not found"),
        ({"cpu": 0}, 400, "cpu must be a whole number from 1"),
        ({"load_cpu": 0}, 400, "load_cpu must be from 0.01 to 100"),
        ({"load_memory": "1"}, 400, "load_memory must be a number"),
        ({"vlan_id": 5000}, 400, "vlan_id"),
        ({"mtu": 100}, 400, "mtu"),
        ({"cpu_features": ["AVX2", "TURBO"]}, 400, "Unknown CPU feature: TURBO"),
        ({"cpu_features": [{"x": 1}]}, 400, "Unknown CPU feature"),
        ({"cpu_arch": "sparc"}, 400, "cpu_arch must be one of"),
        ({"api_token": " "}, 400, "API token cannot be empty"),
        ({"name": "h" * 101}, 400, "at most 100 characters"),
        ({"api_token": None}, 400, "missing field `api_token`"),
    ],
)
async def test_bad_host_is_refused_and_stores_nothing(
    world: AdminWorld, change: dict[str, Any], status: int, fragment: str
) -> None:
    resp = await world.call("POST", "/hosts", json={**b.host(world.user.demo), **change})
    assert resp.status == status, await resp.text()
    assert fragment in (await resp.json())["error"]
    assert (await world.ok("GET", "/hosts"))["total"] == 2


async def test_disks_of_a_host(world: AdminWorld) -> None:
    demo = world.user.demo
    made = (await world.ok("POST", f"/hosts/{demo.host}/disks", json=b.disk()))["data"]
    assert made == {
        "id": made["id"],
        "name": "nvme2",
        "size": 1000 * GIB,
        "kind": "ssd",
        "interface": "pcie",
        "enabled": True,
    }
    listed = (await world.ok("GET", f"/hosts/{demo.host}/disks"))["data"]
    assert [d["name"] for d in listed] == ["nvme", "sata", "nvme2"]
    path = f"/hosts/{demo.host}/disks/{made['id']}"
    patched = (await world.ok("PATCH", path, json={"enabled": False, "kind": "hdd"}))["data"]
    assert patched["enabled"] is False and patched["kind"] == "hdd"
    assert (await world.ok("GET", path))["data"] == patched


async def test_a_disk_of_another_host_is_not_found_there(world: AdminWorld) -> None:
    demo = world.user.demo
    other = (await world.ok("POST", "/hosts", json=b.host(demo)))["data"]
    resp = await world.call("GET", f"/hosts/{other['id']}/disks/{demo.ssd}")
    assert resp.status == 404
    assert (await resp.json())["error"] == f"Disk {demo.ssd} does not belong to host {other['id']}"
    patch = await world.call(
        "PATCH", f"/hosts/{other['id']}/disks/{demo.ssd}", json={"name": "stolen"}
    )
    assert patch.status == 404
    disk = (await world.ok("GET", f"/hosts/{demo.host}/disks/{demo.ssd}"))["data"]
    assert disk["name"] == "nvme"


@pytest.mark.parametrize(
    "change",
    [{"size": 0}, {"kind": "tape"}, {"interface": "usb"}, {"name": ""}, {"name": "d" * 51}],
)
async def test_bad_disk_is_400(world: AdminWorld, change: dict[str, Any]) -> None:
    resp = await world.call(
        "POST", f"/hosts/{world.user.demo.host}/disks", json={**b.disk(), **change}
    )
    assert resp.status == 400, await resp.text()
    assert len((await world.ok("GET", f"/hosts/{world.user.demo.host}/disks"))["data"]) == 2
