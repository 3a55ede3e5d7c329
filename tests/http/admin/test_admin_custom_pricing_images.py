"""Admin custom pricing (disk rows, copy, disable-instead-of-delete) and OS images."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.queue.wire import job_to_json
from domain.enums import DiskInterface, DiskType
from domain.model import CustomTemplate
from tests.http.admin import catalogue_bodies as b
from tests.http.admin.adminapp import AdminWorld
from tests.http.vm_helpers import paid_vm
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(44)
GIB = 1024**3


async def test_pricing_create_patch_replaces_disks_and_copy(world: AdminWorld) -> None:
    made = (await world.ok("POST", "/custom_pricing", json=b.pricing(world.user.demo)))["data"]
    assert made["region_name"] == "Dublin" and made["template_count"] == 0
    assert made["network_mbps"] == 1000 and made["cpu_limit"] == 0.5
    assert [(d["kind"], d["interface"], d["cost"]) for d in made["disk_pricing"]] == [
        ("ssd", "pcie", 4)
    ]
    path = f"/custom_pricing/{made['id']}"
    rows = [
        {
            "kind": "hdd",
            "interface": "sata",
            "cost": 1,
            "min_disk_size": GIB,
            "max_disk_size": 4000 * GIB,
        },
        {
            "kind": "ssd",
            "interface": "sata",
            "cost": 3,
            "min_disk_size": GIB,
            "max_disk_size": 900 * GIB,
        },
    ]
    patched = (
        await world.ok(
            "PATCH", path, json={"disk_pricing": rows, "cpu_cost": 175, "network_mbps": None}
        )
    )["data"]
    assert [(d["kind"], d["interface"]) for d in patched["disk_pricing"]] == [
        ("hdd", "sata"),
        ("ssd", "sata"),
    ]
    assert patched["cpu_cost"] == 175 and "network_mbps" not in patched
    copy = await world.ok(
        "POST",
        f"{path}/copy",
        json={"name": "Copied", "enabled": False, "region_id": world.user.demo.region},
    )
    data = copy["data"]
    assert data["id"] != made["id"] and data["name"] == "Copied" and data["enabled"] is False
    assert data["cpu_cost"] == 175 and data["cpu_limit"] == 0.5
    assert [(d["kind"], d["cost"]) for d in data["disk_pricing"]] == [("hdd", 1), ("ssd", 3)]
    listed = await world.ok("GET", "/custom_pricing?enabled=false")
    assert "Copied" in [p["name"] for p in listed["data"]]
    deleted = await world.ok("DELETE", f"/custom_pricing/{data['id']}")
    assert deleted["data"]["message"] == "Custom pricing model deleted successfully"
    assert (await world.call("GET", f"/custom_pricing/{data['id']}")).status == 404


async def test_pricing_used_by_templates_is_disabled_not_deleted(world: AdminWorld) -> None:
    demo = world.user.demo
    async with world.api.store() as uow:
        await uow.custom_templates.add(
            CustomTemplate(
                id=0,
                cpu=2,
                memory=2 * GIB,
                disk_size=20 * GIB,
                disk_type=DiskType.SSD,
                disk_interface=DiskInterface.PCIE,
                pricing_id=demo.custom,
            )
        )
        await uow.commit()
    resp = await world.ok("DELETE", f"/custom_pricing/{demo.custom}")
    assert resp["data"]["message"] == (
        "Custom pricing model disabled instead of deleted: 1 templates are using this pricing model"
    )
    info = (await world.ok("GET", f"/custom_pricing/{demo.custom}"))["data"]
    assert info["enabled"] is False and info["template_count"] == 1
    assert len(info["disk_pricing"]) == 2


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"region_id": 999}, 422),
        ({"currency": "XYZ"}, 400),
        ({"min_cpu": 8, "max_cpu": 4}, 400),
        ({"min_memory": 0}, 400),
        ({"max_cpu": 300}, 400),
        ({"disk_pricing": "ssd"}, 400),
        ({"disk_pricing": [{"kind": "ssd"}]}, 400),
        (
            {
                "disk_pricing": [
                    {
                        "kind": "ssd",
                        "interface": "pcie",
                        "cost": 1,
                        "min_disk_size": 9,
                        "max_disk_size": 5,
                    }
                ]
            },
            400,
        ),
        (
            {
                "disk_pricing": [
                    {
                        "kind": "ssd",
                        "interface": "pcie",
                        "cost": 1,
                        "min_disk_size": 1,
                        "max_disk_size": 5,
                    }
                ]
                * 2
            },
            400,
        ),
        ({"cpu_cost": 1.5}, 400),
        ({"name": " "}, 400),
    ],
)
async def test_bad_pricing_is_refused(
    world: AdminWorld, change: dict[str, Any], status: int
) -> None:
    resp = await world.call(
        "POST", "/custom_pricing", json={**b.pricing(world.user.demo), **change}
    )
    assert resp.status == status, await resp.text()
    assert (await world.ok("GET", "/custom_pricing"))["total"] == 2


async def test_image_crud_and_checksum_rules(world: AdminWorld) -> None:
    made = (
        await world.ok(
            "POST",
            "/vm_os_images",
            json={**b.image(), "sha2": "AB" * 32, "sha2_url": "https://img/SHA256SUMS"},
        )
    )["data"]
    assert made["distribution"] == "fedora" and made["sha2"] == "ab" * 32
    assert made["active_vm_count"] == 0 and made["default_username"] is None
    path = f"/vm_os_images/{made['id']}"
    moved = (await world.ok("PATCH", path, json={"url": "https://img/fedora40b.qcow2"}))["data"]
    assert moved["sha2"] is None and moved["sha2_url"] == "https://img/SHA256SUMS"
    cleared = (await world.ok("PATCH", path, json={"sha2_url": None}))["data"]
    assert cleared["sha2_url"] is None
    assert (await world.ok("DELETE", path)) == {"data": "VM OS image deleted successfully"}


async def test_image_download_enqueues_a_job(world: AdminWorld) -> None:
    image = world.user.demo.ubuntu
    resp = await world.ok("POST", f"/vm_os_images/{image}/download")
    assert resp == {"data": "Download job enqueued"}
    jobs = [job_to_json(d.job) for d in await world.api.services.queue.receive(100, 0)]
    assert f'{{"DownloadOsImages":{{"image_id":{image}}}}}' in jobs


async def test_image_download_onto_one_host(world: AdminWorld) -> None:
    image = world.user.demo.ubuntu
    host = (await world.ok("GET", "/hosts"))["data"][0]
    resp = await world.ok("POST", f"/vm_os_images/{image}/download?host_id={host['id']}")
    assert resp == {"data": "Download job enqueued"}
    jobs = [job_to_json(d.job) for d in await world.api.services.queue.receive(100, 0)]
    assert f'{{"DownloadOsImages":{{"image_id":{image},"host_id":{host["id"]}}}}}' in jobs
    for bad, status in (("999", 404), ("0", 400), ("x", 400)):
        refused = await world.call("POST", f"/vm_os_images/{image}/download?host_id={bad}")
        assert refused.status == status, bad
    assert await world.api.services.queue.receive(100, 0) == []


async def test_image_in_use_and_duplicates_are_refused(world: AdminWorld) -> None:
    demo = world.user.demo
    await paid_vm(world.user, ALICE)
    info = (await world.ok("GET", f"/vm_os_images/{demo.ubuntu}"))["data"]
    assert info["active_vm_count"] == 1
    resp = await world.call("DELETE", f"/vm_os_images/{demo.ubuntu}")
    assert resp.status == 422 and "1 VMs" in (await resp.json())["error"]
    dup = await world.call(
        "POST",
        "/vm_os_images",
        json={**b.image(), "distribution": "ubuntu", "flavour": "Server", "version": "24.04"},
    )
    assert dup.status == 409


@pytest.mark.parametrize(
    "change",
    [
        {"distribution": "windows"},
        {"url": "ftp://img/x"},
        {"url": "u" * 1025},
        {"sha2": "xyz"},
        {"release_date": "yesterday"},
        {"enabled": None},
        {"flavour": ""},
    ],
)
async def test_bad_image_is_400(world: AdminWorld, change: dict[str, Any]) -> None:
    resp = await world.call("POST", "/vm_os_images", json={**b.image(), **change})
    assert resp.status == 400, await resp.text()
    assert (await world.ok("GET", "/vm_os_images"))["total"] == 3
