"""Review r7: a custom pricing's `disk_pricing` replaced without a row of a disk type its live
custom VMs have left them unrenewable ("No disk price found"), so paid VMs ran out and were
deleted. Now refused (422, nothing changed) while such a VM lives; on every backend."""

from __future__ import annotations

from typing import Any

from domain.enums import DiskInterface, DiskType
from domain.model import GIB
from tests.http.apiapp import ApiClient
from tests.http.backend_apps import ROOT, admin, backend, c, database
from tests.http.vm_helpers import add_key, provision, renew, settle
from tests.nostr_signing import NostrKey

__all__ = ["admin", "backend", "c", "database"]

ALICE = NostrKey.from_seed(23)
BASE = "/api/admin/v1"
HDD = {"kind": "hdd", "interface": "sata", "cost": 2, "min_disk_size": 10 * GIB,
       "max_disk_size": 8000 * GIB}  # fmt: skip
SSD_SATA = {**HDD, "kind": "ssd", "cost": 7}


async def _paid_custom_vm(c: ApiClient) -> dict[str, Any]:
    """ALICE's custom VM with an SSD on PCIe, its month paid, running."""
    key = await add_key(c.api, ALICE)
    body = {"pricing_id": c.demo.custom, "cpu": 2, "memory": 4 * GIB, "disk": 80 * GIB,
            "disk_type": "ssd", "disk_interface": "pcie", "image_id": c.demo.debian,
            "ssh_key_id": key.id}  # fmt: skip
    resp = await c.call("POST", "/api/v1/vm/custom-template", key=ALICE, json=body)
    assert resp.status == 200, await resp.text()
    vm: dict[str, Any] = (await resp.json())["data"]
    await settle(c.api, (await renew(c, ALICE, vm["id"]))["id"])
    await provision(c.api, vm["id"])
    return vm


async def _patch(admin: ApiClient, c: ApiClient, rows: list[dict[str, Any]]) -> tuple[int, Any]:
    body = {"disk_pricing": rows, "name": "Dublin custom, re-done"}
    resp = await admin.call("PATCH", f"{BASE}/custom_pricing/{c.demo.custom}", key=ROOT, json=body)
    return resp.status, await resp.json()


async def _disks(c: ApiClient) -> set[tuple[DiskType, DiskInterface, int]]:
    async with c.api.store() as uow:
        rows = await uow.custom_pricing.list_disks(c.demo.custom)
    return {(d.kind, d.interface, d.cost) for d in rows}


async def _renews(c: ApiClient, vm: dict[str, Any]) -> bool:
    resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew", key=ALICE)
    status: int = resp.status
    return status == 200


async def test_the_last_row_of_a_disk_type_in_use_stays(c: ApiClient, admin: ApiClient) -> None:
    """The proof: the operator re-does the disk offer as HDD only; the paid SSD VM would be
    stranded, so the edit is refused, the pricing as it was, the VM still renewable."""
    vm = await _paid_custom_vm(c)
    rows = await _disks(c)
    for offer in ([HDD], []):
        status, answer = await _patch(admin, c, offer)
        assert status == 422, answer
        assert "ssd (pcie) ×1" in answer["error"] and "could not be renewed" in answer["error"]
        assert await _disks(c) == rows
    async with c.api.store() as uow:
        pricing = await uow.custom_pricing.get(c.demo.custom)
    assert pricing is not None and pricing.name != "Dublin custom, re-done"
    assert await _renews(c, vm)


async def test_a_row_of_the_same_type_keeps_it_renewable(c: ApiClient, admin: ApiClient) -> None:
    """Another interface of its type bills the disk (`billed_disk_row`): allowed."""
    vm = await _paid_custom_vm(c)
    status, answer = await _patch(admin, c, [HDD, SSD_SATA])
    assert status == 200, answer
    assert await _disks(c) == {(DiskType.HDD, DiskInterface.SATA, 2),
                               (DiskType.SSD, DiskInterface.SATA, 7)}  # fmt: skip
    assert await _renews(c, vm)


async def test_a_deleted_vms_disk_is_no_longer_kept(c: ApiClient, admin: ApiClient) -> None:
    vm = await _paid_custom_vm(c)
    async with c.api.store() as uow:  # as the worker's DeleteVm leaves it: soft-deleted
        await uow.vms.delete(vm["id"])
        await uow.commit()
    status, answer = await _patch(admin, c, [HDD])
    assert status == 200, answer
    assert await _disks(c) == {(DiskType.HDD, DiskInterface.SATA, 2)}


async def test_no_other_field_strands_a_paid_custom_vm(c: ApiClient, admin: ApiClient) -> None:
    """What its renewal does not read stays free: another currency (a new price, quotes
    expired), switched off, bounds the VM is now outside of; it still renews."""
    vm = await _paid_custom_vm(c)
    body = {"currency": "USD", "enabled": False, "min_cpu": 4, "max_cpu": 8,
            "min_memory": 8 * GIB, "max_memory": 16 * GIB}  # fmt: skip
    resp = await admin.call("PATCH", f"{BASE}/custom_pricing/{c.demo.custom}", key=ROOT, json=body)
    assert resp.status == 200, await resp.text()
    assert await _renews(c, vm)
