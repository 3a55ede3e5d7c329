"""Admin VM routes: list/get shapes, extend (exact expiry, bounds, deleted), start/stop jobs."""

from __future__ import annotations

from datetime import timedelta

from adapters.http.envelope import parse_time
from domain.enums import VmHistoryActionType
from domain.intervals import add_months
from domain.limits import MAX_EXPIRY_AHEAD_MONTHS
from ports.jobs import SpawnVm, StartVm
from ports.queue import Job
from tests.http.admin.adminapp import ROOT, VIEWER, AdminWorld
from tests.http.vm_helpers import order, paid_vm, subscription_of
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)
BOB = NostrKey.from_seed(22)


async def jobs(world: AdminWorld) -> list[Job]:
    return [d.job for d in await world.api.queue.receive(100, 0)]


async def test_list_and_get_shapes(world: AdminWorld) -> None:
    first = await paid_vm(world.user, ALICE)
    second = await order(world.user, BOB)
    page = await world.ok("GET", "/vms", VIEWER)
    assert [v["id"] for v in page["data"]] == [second["id"], first["id"]]
    assert (page["total"], page["limit"], page["offset"]) == (2, 50, 0)
    vm = (await world.ok("GET", f"/vms/{first['id']}"))["data"]
    assert vm["user_pubkey"] == ALICE.pubkey_hex
    assert vm["template_id"] == world.user.demo.tiny and vm["is_standard_template"] is True
    assert vm["image_name"].startswith("Ubuntu ")
    assert vm["running_state"] is None
    assert vm["deleted"] is False and vm["disabled"] is False
    sub = vm["subscription"]
    assert sub["is_setup"] is True and sub["payment_count"] == 1
    assert vm["expires"] == sub["expires"] and vm["expires"] is not None
    for field in (
        "mac_address",
        "ssh_key_name",
        "host_name",
        "region_name",
        "ip_addresses",
        "cpu",
        "memory",
        "disk_size",
        "disk_type",
        "disk_interface",
    ):
        assert field in vm


async def test_list_filters_and_pagination(world: AdminWorld) -> None:
    a = await order(world.user, ALICE)
    await order(world.user, BOB)
    by_key = await world.ok("GET", f"/vms?pubkey={ALICE.pubkey_hex}")
    assert [v["id"] for v in by_key["data"]] == [a["id"]]
    assert (await world.ok("GET", "/vms?pubkey=" + "00" * 32))["total"] == 0
    page = await world.ok("GET", "/vms?limit=1&offset=1")
    assert [v["id"] for v in page["data"]] == [a["id"]] and page["total"] == 2
    assert (await world.ok("GET", "/vms?limit=500"))["limit"] == 100
    assert (await world.call("GET", "/vms?limit=x")).status == 400


async def test_extend_adds_exact_days_once_with_history_and_spawn(world: AdminWorld) -> None:
    vm = await paid_vm(world.user, ALICE)
    before = await subscription_of(world.api, vm["id"])
    assert before.expires is not None
    await jobs(world)
    body = await world.ok("PUT", f"/vms/{vm['id']}/extend", json={"days": 10, "reason": "gift"})
    assert body == {"data": None}
    after = await subscription_of(world.api, vm["id"])
    assert after.expires == before.expires + timedelta(days=10)
    assert SpawnVm(vm_id=vm["id"]) in await jobs(world)
    async with world.api.store() as uow:
        history = (await uow.vm_history.list_by_vm(vm["id"], 1)).items[0]
    assert history.action_type is VmHistoryActionType.RENEWED
    assert history.metadata["admin_action"] is True and history.metadata["reason"] == "gift"
    assert history.metadata["days_extended"] == 10
    shown = await world.ok("GET", f"/vms/{vm['id']}/history")
    assert shown["data"][0]["action_type"] == "renewed"
    root = (await world.ok("GET", f"/vms/{vm['id']}"))["data"]
    assert parse_time(root["expires"]) == after.expires
    entry = await world.ok("GET", f"/vms/{vm['id']}/history/{shown['data'][0]['id']}")
    assert entry["data"]["initiated_by_user_pubkey"] == ROOT.pubkey_hex


async def test_extend_of_a_never_paid_vm_starts_from_now(world: AdminWorld) -> None:
    vm = await order(world.user, ALICE)
    await world.ok("PUT", f"/vms/{vm['id']}/extend", json={"days": 1})
    sub = await subscription_of(world.api, vm["id"])
    assert sub.expires == world.api.clock.now() + timedelta(days=1)
    assert sub.is_active and not sub.is_setup


async def test_extend_bounds_and_deleted_vm(world: AdminWorld) -> None:
    vm = await paid_vm(world.user, ALICE)
    before = await subscription_of(world.api, vm["id"])
    for days, text in (
        (0, "Must extend by at least 1 day"),
        (366, "Cannot extend by more than 365 days"),
    ):
        resp = await world.call("PUT", f"/vms/{vm['id']}/extend", json={"days": days})
        assert resp.status == 400
        assert await resp.json() == {"error": text}
    assert (await world.call("PUT", f"/vms/{vm['id']}/extend", json={})).status == 400
    assert (await world.call("PUT", f"/vms/{vm['id']}/extend", json={"days": 365})).status == 200
    async with world.api.store() as uow:
        await uow.vms.delete(vm["id"])
        await uow.commit()
    resp = await world.call("PUT", f"/vms/{vm['id']}/extend", json={"days": 5})
    assert resp.status == 422
    assert await resp.json() == {"error": "Cannot extend a deleted VM"}
    after = await subscription_of(world.api, vm["id"])
    assert after.expires == before.expires + timedelta(days=365)  # type: ignore[operator]
    assert (await world.call("PUT", "/vms/999/extend", json={"days": 5})).status == 404


async def test_repeated_extends_stay_within_the_admin_expiry_bound(world: AdminWorld) -> None:
    """PATCH /subscriptions refuses an expiry more than 10 years ahead; 365 days at a time
    the extend got past it. The extend that would cross it is 400 and changes nothing."""
    vm = await paid_vm(world.user, ALICE)
    latest = add_months(world.api.clock.now(), MAX_EXPIRY_AHEAD_MONTHS)
    path = f"/vms/{vm['id']}/extend"
    for _ in range(MAX_EXPIRY_AHEAD_MONTHS // 12 - 1):  # 9 × 365 days: within the bound
        await world.ok("PUT", path, json={"days": 365})
    await jobs(world)
    before = await subscription_of(world.api, vm["id"])
    resp = await world.call("PUT", path, json={"days": 365})
    assert resp.status == 400
    assert (await resp.json())["error"].startswith("expires must be from")
    assert await subscription_of(world.api, vm["id"]) == before and await jobs(world) == []
    assert before.expires is not None and before.expires <= latest


async def test_start_stop_queue_jobs_and_refuse_deleted(world: AdminWorld) -> None:
    vm = await paid_vm(world.user, ALICE)
    await jobs(world)
    started = await world.ok("POST", f"/vms/{vm['id']}/start")
    assert isinstance(started["data"]["job_id"], str)
    await world.ok("POST", f"/vms/{vm['id']}/stop")
    sent = await jobs(world)
    assert [j.kind for j in sent] == ["StartVm", "StopVm"]
    assert isinstance(sent[0], StartVm) and sent[0].vm_id == vm["id"]
    assert sent[0].admin_user_id is not None
    async with world.api.store() as uow:
        await uow.vms.delete(vm["id"])
        await uow.commit()
    resp = await world.call("POST", f"/vms/{vm['id']}/stop")
    assert resp.status == 422 and await resp.json() == {"error": "Cannot stop a deleted VM"}
    assert (await world.ok("GET", f"/vms/{vm['id']}"))["data"]["deleted"] is True
    assert (await world.ok("GET", "/vms"))["total"] == 0
    listed = await world.ok("GET", "/vms?include_deleted=true")
    assert [(v["id"], v["deleted"]) for v in listed["data"]] == [(vm["id"], True)]
