"""The VM status read model on memory, SQLite and MariaDB: the same JSON from the same rows."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs

from domain.model import GIB, IpAssignment
from domain.pricing import custom_price
from tests.http.apiapp import ALICE, BOB, ApiClient
from tests.http.backend_apps import backend, c, database
from tests.http.vm_helpers import add_key, order, paid_vm
from tests.nostr_signing import NostrKey

__all__ = ["backend", "c", "database"]


async def _custom_order(c: ApiClient) -> dict[str, Any]:
    key = await add_key(c.api, ALICE, "custom")
    body = {
        "pricing_id": c.demo.custom,
        "cpu": 2,
        "memory": 4 * GIB,
        "disk": 80 * GIB,
        "disk_type": "ssd",
        "disk_interface": "pcie",
        "image_id": c.demo.debian,
        "ssh_key_id": key.id,
    }
    resp = await c.call("POST", "/api/v1/vm/custom-template", json=body)
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def _get(c: ApiClient, path: str) -> Any:
    resp = await c.call("GET", path)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]


async def test_vm_status_shows_live_addresses_offer_and_custom_price(c: ApiClient) -> None:
    standard = await paid_vm(c, ALICE)
    custom = await _custom_order(c)
    await order(c, BOB)
    async with c.api.store() as uow:
        live = await uow.ip_assignments.add(
            IpAssignment(
                id=0,
                vm_id=standard["id"],
                ip_range_id=c.demo.ip4_range,
                ip="185.18.221.14",
                dns_reverse="vm.lnvps.test",
            )
        )
        gone = await uow.ip_assignments.add(
            IpAssignment(
                id=0, vm_id=standard["id"], ip_range_id=c.demo.ip4_range, ip="185.18.221.15"
            )
        )
        await uow.ip_assignments.delete(gone.id)
        v6 = await uow.ip_assignments.add(
            IpAssignment(
                id=0,
                vm_id=standard["id"],
                ip_range_id=c.demo.ip6_range,
                ip="2a13:2c0::5",
                dns_forward="vm.lnvps.test",
            )
        )
        vm = await uow.vms.get(custom["id"])
        assert vm is not None and vm.custom_template_id is not None
        spec = await uow.custom_templates.get(vm.custom_template_id)
        assert spec is not None
        pricing = await uow.custom_pricing.get(spec.pricing_id)
        assert pricing is not None
        disks = await uow.custom_pricing.list_disks(pricing.id)
        await uow.commit()
    expected_amount = custom_price(spec, pricing, disks).total.amount

    listed = await _get(c, "/api/v1/vm")
    assert [v["id"] for v in listed] == [standard["id"], custom["id"]]
    shown, custom_shown = listed
    assert shown == await _get(c, f"/api/v1/vm/{standard['id']}")
    assert custom_shown == await _get(c, f"/api/v1/vm/{custom['id']}")
    assert shown["ip_assignments"] == [
        {
            "id": live.id,
            "ip": "185.18.221.14/25",
            "gateway": "185.18.221.1",
            "forward_dns": None,
            "reverse_dns": "vm.lnvps.test",
        },
        {
            "id": v6.id,
            "ip": "2a13:2c0::5/64",
            "gateway": "fe80::1",
            "forward_dns": "vm.lnvps.test",
            "reverse_dns": None,
        },
    ]
    assert shown["template"]["region"] == {"id": c.demo.region, "name": "Dublin"}
    assert shown["template"]["cost_plan"]["amount"] == 270
    assert shown["expires"] is not None and shown["mac_address"] != "ff:ff:ff:ff:ff:ff"
    assert shown["ssh_key"]["name"] == "laptop"
    assert custom_shown["template"]["name"] == "Custom"
    assert custom_shown["template"]["cost_plan"]["amount"] == expected_amount > 0
    assert custom_shown["template"]["region"]["id"] == pricing.region_id
    assert custom_shown["ssh_key"]["name"] == "custom"
    assert custom_shown == {**custom, "status": custom_shown["status"]}


async def test_a_deleted_vm_leaves_the_list_and_keeps_its_history(c: ApiClient) -> None:
    kept, deleted = await order(c, ALICE), await order(c, ALICE)
    async with c.api.store() as uow:
        await uow.vms.delete(deleted["id"])
        await uow.commit()
    assert [v["id"] for v in await _get(c, "/api/v1/vm")] == [kept["id"]]
    resp = await c.call("GET", f"/api/v1/vm/{deleted['id']}")
    assert resp.status == 404 and await resp.json() == {"error": "VM not found"}
    assert isinstance(await _get(c, f"/api/v1/vm/{deleted['id']}/history"), list)


async def test_a_first_request_creates_the_user_once_and_later_ones_write_nothing(
    c: ApiClient,
) -> None:
    """Two first requests of a new key at once: one user row; then reads do not change it."""
    first = await asyncio.gather(*(c.call("GET", "/api/v1/account", key=BOB) for _ in range(4)))
    assert [r.status for r in first] == [200] * 4
    async with c.api.store() as uow:
        users = await uow.users.list_page(100, 0)
    assert [u.pubkey for u in users.items].count(BOB.pubkey) == 1
    [bob] = [u for u in users.items if u.pubkey == BOB.pubkey]
    assert (await c.call("GET", "/api/v1/account", key=BOB)).status == 200
    async with c.api.store() as uow:
        again = await uow.users.get_by_pubkey(BOB.pubkey)
    assert again is not None and attrs.asdict(again) == attrs.asdict(bob)


async def test_a_new_key_reading_its_vms_is_created_once_in_the_same_unit_of_work(
    c: ApiClient,
) -> None:
    """`authenticated_read`: an unknown key is inserted and committed, then the read goes on
    in the same unit of work; concurrent first reads make one user."""
    first = await asyncio.gather(*(c.call("GET", "/api/v1/vm", key=BOB) for _ in range(3)))
    assert [r.status for r in first] == [200] * 3
    assert [(await r.json())["data"] for r in first] == [[], [], []]
    async with c.api.store() as uow:
        users = await uow.users.list_page(100, 0)
    assert [u.pubkey for u in users.items].count(BOB.pubkey) == 1
    mine = await order(c, BOB)
    assert [v["id"] for v in await _get_as(c, "/api/v1/vm", BOB)] == [mine["id"]]


async def _get_as(c: ApiClient, path: str, key: NostrKey) -> Any:
    resp = await c.call("GET", path, key=key)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]
