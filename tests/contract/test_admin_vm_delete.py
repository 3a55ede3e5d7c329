"""The admin API's VM delete on memory, SQLite and MariaDB: the DeleteVm job it queues runs the
worker's deletion path, which expires and cancels the VM's pending invoices (D24)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

import app.worker.jobs as jobs_module
from app.admin.vm_removal import delete_vm
from app.admin.vms import VmIsDeleted
from app.worker.jobs import VmBusy, delete_by_admin
from app.worker.pending import end_pending
from app.worker.provisioning import spawn_lease
from domain.enums import VmHistoryActionType
from domain.model import Vm
from ports.jobs import DeleteVm
from ports.storage import StorageBusy
from ports.vmhost import VmHostError
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import (
    notice_titles,
)
from tests.unit.worker.world import World

database = storage_backends.database


world = lifecycle_world.world_with_rails("payment_canceller")


async def test_admin_delete_ends_pending_invoices_through_the_worker(world: World) -> None:
    vm = await world.paid_vm()
    invoice = await world.renew(vm)
    await world.run_jobs()
    await delete_vm(
        world.shop.factory, world.queue, world.clock, vm_id=vm.id, admin_id=7, reason="abuse"
    )
    assert not (await world.shop.vm(vm.id)).deleted  # the worker does it, not the API
    assert await world.run_jobs() >= 1
    assert (await world.shop.vm(vm.id)).deleted
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        assert await uow.payments.list_pending_for_subscription(sub.id, world.now) == []
        [entry] = [
            h
            for h in (await uow.vm_history.list_by_vm(vm.id, 50, 0)).items
            if h.metadata and h.metadata.get("admin_user_id") == 7
        ]
        request = entry.metadata and entry.metadata.get("request")
        assert isinstance(request, str) and request  # the request's id, against redelivery
        assert entry.metadata == {
            "admin_action": True,
            "admin_user_id": 7,
            "reason": "abuse",
            "request": request,
        }
    assert world.shop.node.cancelled == [invoice.id]
    with pytest.raises(VmIsDeleted, match="VM is already deleted"):
        await delete_vm(
            world.shop.factory, world.queue, world.clock, vm_id=vm.id, admin_id=7, reason=None
        )


async def test_two_deletes_of_one_vm_at_once_delete_it_once(world: World) -> None:
    """The second finds the first holding the VM while its host deletes it (VmBusy): it fails,
    is delivered again and then finds the VM deleted. The first's host call is held: run
    merely at once, the backend's scheduling decided whether the second came during it."""
    vm = await world.paid_vm()
    await world.run_jobs()
    for _ in range(2):
        await delete_vm(
            world.shop.factory, world.queue, world.clock, vm_id=vm.id, admin_id=7, reason=None
        )
    deliveries = await world.queue.receive(10, 0)
    first, second = [d.job for d in deliveries if isinstance(d.job, DeleteVm)]
    task = await _delete_held_on_host(world, first)
    with pytest.raises(VmBusy):
        await world.handlers.run(second)
    world.host.let_go("delete_vm")
    await task
    await world.handlers.run(second)  # delivered again: nothing more to do
    async with world.shop.factory() as uow:
        history = (await uow.vm_history.list_by_vm(vm.id, 50, 0)).items
    assert [h.action_type for h in history].count(VmHistoryActionType.DELETED) == 1


# --- D24: an admin delete racing a payment or a spawn of the same VM ---------------------------
#: a generous bound so a regression fails instead of hanging; no test asserts a duration
GUARD_S = 30
RECREATED = "[VM{}] Re-created after deletion"


async def _delete_held_on_host(world: World, job: DeleteVm) -> asyncio.Task[None]:
    """The worker's DeleteVm, its host call held (a slow Proxmox task) until let go."""
    world.host.hold("delete_vm")
    task = asyncio.create_task(delete_by_admin(world.deps, job))
    await asyncio.wait_for(world.host.entered("delete_vm").wait(), GUARD_S)
    return task


async def test_a_payment_during_an_admin_delete_restores_the_vm(world: World) -> None:
    """A renewal completing while the host deletes the VM is booked as a plain renewal (the VM
    was live); the deletion is recorded all the same, then undone as a payment arriving after
    it undoes it: un-deleted, re-created empty with a new address, and said so once."""
    vm = await world.paid_vm()
    renewal = await world.renew(vm)
    job = DeleteVm(vm_id=vm.id, reason="abuse", request="r1")
    task = await _delete_held_on_host(world, job)
    assert (await asyncio.wait_for(world.complete(renewal), GUARD_S)).completed
    world.host.let_go("delete_vm")
    await task
    await world.run_jobs()

    again = await world.shop.vm(vm.id)
    assert not again.deleted and world.host_state(vm.id) == "running"
    assert again.mac_address != vm.mac_address  # built anew
    assert (await world.shop.payment(renewal.id)).is_paid and (await world.sub(vm)).is_active
    [deleted] = await world.history(vm, VmHistoryActionType.DELETED)
    assert deleted.metadata == {"admin_action": True, "reason": "abuse", "request": "r1"}
    async with world.shop.factory() as uow:
        assert len(await uow.ip_assignments.list_by_vm(vm.id)) == 1
    user, admins = notice_titles(world, vm.user_id)
    assert user.count(RECREATED.format(vm.id)) == 1 and admins.count(RECREATED.format(vm.id)) == 1
    assert user.count(f"[VM{vm.id}] Deleted by Admin") == 1
    assert user.count(f"[VM{vm.id}] Created") == 1  # the first build's only

    await delete_by_admin(world.deps, job)  # a second delivery: the restored VM stays
    await world.vm_check()
    await world.run_jobs()
    assert not (await world.shop.vm(vm.id)).deleted and world.host_state(vm.id) == "running"
    assert len(await world.history(vm, VmHistoryActionType.DELETED)) == 1
    assert world.host.calls.get("delete_vm") == 1 and world.host.calls.get("create_vm") == 2
    assert notice_titles(world, vm.user_id) == (user, admins)  # nothing more


async def test_a_payment_after_an_admin_delete_restores_the_vm(world: World) -> None:
    """The same end as above when the payment comes after the deletion was recorded."""
    vm = await world.paid_vm()
    renewal = await world.renew(vm)
    await delete_by_admin(world.deps, DeleteVm(vm_id=vm.id, request="r2"))
    world.advance(timedelta(minutes=1))
    assert (await world.complete(renewal)).completed  # expired, still settled at the node
    await world.run_jobs()
    assert not (await world.shop.vm(vm.id)).deleted and world.host_state(vm.id) == "running"
    user, admins = notice_titles(world, vm.user_id)
    assert user.count(RECREATED.format(vm.id)) == 1 and admins.count(RECREATED.format(vm.id)) == 1
    await world.vm_check()
    await world.run_jobs()
    assert notice_titles(world, vm.user_id) == (user, admins)


async def test_an_admin_delete_without_payment_is_not_undone(world: World) -> None:
    """A payment completed before the delete was claimed restores nothing."""
    vm = await world.paid_vm()
    await world.complete(await world.renew(vm))
    await world.run_jobs()
    task = await _delete_held_on_host(world, DeleteVm(vm_id=vm.id))
    world.host.let_go("delete_vm")
    await task
    await world.run_jobs()
    assert (await world.shop.vm(vm.id)).deleted and world.host_state(vm.id) is None
    assert not world.notifier.titled(RECREATED.format(vm.id))


async def test_no_spawn_rebuilds_a_vm_while_an_admin_delete_runs(world: World) -> None:
    """The host deletes the VM at once but answers late; a payment's SpawnVm (or the VM
    check) runs meanwhile and builds nothing, as the delete holds the VM's build lease. No VM
    is left running on a host without its row, and the payment restores it once after."""
    vm = await world.paid_vm()
    renewal = await world.renew(vm)
    gate, entered = asyncio.Event(), asyncio.Event()
    inner_delete = world.host.inner.delete_vm

    async def slow_delete(v: Vm) -> None:
        await inner_delete(v)
        entered.set()
        await gate.wait()

    world.host.delete_vm = slow_delete  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(delete_by_admin(world.deps, DeleteVm(vm_id=vm.id)))
    await asyncio.wait_for(entered.wait(), GUARD_S)
    assert (await world.complete(renewal)).completed
    await world.run_jobs()  # the payment's SpawnVm
    await world.vm_check()  # a paid VM missing from its host
    assert world.host_state(vm.id) is None  # not rebuilt under the delete
    gate.set()
    await task
    await world.run_jobs()

    again = await world.shop.vm(vm.id)
    assert not again.deleted and world.host_state(vm.id) == "running"
    async with world.shop.factory() as uow:
        assert len(await uow.ip_assignments.list_by_vm(vm.id)) == 1
    user, admins = notice_titles(world, vm.user_id)
    assert user.count(RECREATED.format(vm.id)) == 1 and admins.count(RECREATED.format(vm.id)) == 1


async def test_an_admin_delete_waits_for_a_build_of_the_vm(world: World) -> None:
    """A VM being built right now (its build lease held) is not deleted under the build: the
    job fails (delivered again) and touches neither host nor rows; once built it deletes."""
    vm = await world.paid_vm()
    async with world.shop.factory() as uow:
        build = await uow.worker_leases.take(spawn_lease(vm.id), world.now, world.now)
        assert build is not None
        await uow.commit()
    with pytest.raises(VmBusy):
        await delete_by_admin(world.deps, DeleteVm(vm_id=vm.id))
    assert "delete_vm" not in world.host.calls and not (await world.shop.vm(vm.id)).deleted
    async with world.shop.factory() as uow:
        assert await uow.worker_leases.release(spawn_lease(vm.id), build)
        await uow.commit()
    await delete_by_admin(world.deps, DeleteVm(vm_id=vm.id))
    assert (await world.shop.vm(vm.id)).deleted and world.host_state(vm.id) is None
    async with world.shop.factory() as uow:  # released with the record
        assert await uow.worker_leases.take(spawn_lease(vm.id), world.now, world.now)


# --- the same races when the job is delivered again, or clicked twice ---------------------------


def _asked(world: World, request: str) -> DeleteVm:
    """An admin's DeleteVm as the API queues it: its request id and when it was asked for."""
    return DeleteVm(vm_id=1, request=request, requested=int(world.now.timestamp()))


async def _assert_restored_once(world: World, vm: Vm, renewal_id: bytes) -> None:
    again = await world.shop.vm(vm.id)
    assert not again.deleted and world.host_state(vm.id) == "running"
    assert (await world.shop.payment(renewal_id)).is_paid
    user, admins = notice_titles(world, vm.user_id)
    assert user.count(RECREATED.format(vm.id)) == 1 and admins.count(RECREATED.format(vm.id)) == 1


async def test_a_payment_during_a_delete_that_failed_after_the_host_is_restored_on_retry(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host destroys the VM, then reports an error: the job fails and is delivered again.
    The renewal paid meanwhile is still one paid during the deletion (the job says since
    when), so the redelivery records the deletion and brings the VM back."""
    vm = await world.paid_vm()
    renewal = await world.renew(vm)
    job = _asked(world, "r7")
    world.advance(timedelta(seconds=2))
    destroy = world.host.inner.delete_vm
    gate, entered = asyncio.Event(), asyncio.Event()

    async def destroyed_then_failed(v: Vm) -> None:
        await destroy(v)
        if not entered.is_set():
            entered.set()
            await gate.wait()
            raise VmHostError("task failed after the destroy", transient=False)

    monkeypatch.setattr(world.host, "delete_vm", destroyed_then_failed)
    task = asyncio.create_task(delete_by_admin(world.deps, job))
    await asyncio.wait_for(entered.wait(), GUARD_S)
    assert (await asyncio.wait_for(world.complete(renewal), GUARD_S)).completed
    gate.set()
    with pytest.raises(VmHostError):
        await task
    await world.run_jobs()  # the renewal's SpawnVm (the lease is free again)
    await delete_by_admin(world.deps, job)  # delivered again
    await world.run_jobs()
    await _assert_restored_once(world, vm, renewal.id)


async def test_a_recording_that_fails_frees_the_vm_and_the_retry_restores_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recording transaction fails once (a deadlock with the payment's booking): the
    build lease goes with it, so the redelivery is not held off as busy for 15 minutes, and
    it still sees the renewal as paid during the deletion."""
    vm = await world.paid_vm()
    renewal = await world.renew(vm)
    job = _asked(world, "r8")
    world.advance(timedelta(seconds=2))
    real = end_pending
    failures = iter([StorageBusy("deadlock found when trying to get lock")])

    async def busy_once(*args: Any, **kw: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return await real(*args, **kw)

    monkeypatch.setattr(jobs_module, "end_pending", busy_once)
    task = await _delete_held_on_host(world, job)
    assert (await asyncio.wait_for(world.complete(renewal), GUARD_S)).completed
    world.host.let_go("delete_vm")
    with pytest.raises(StorageBusy):
        await task
    await delete_by_admin(world.deps, job)  # not VmBusy: the lease was released
    await world.run_jobs()
    await _assert_restored_once(world, vm, renewal.id)


async def test_a_second_click_does_not_delete_a_vm_a_payment_restored(world: World) -> None:
    """Two clicks queue two jobs; the first deletes, a renewal paid meanwhile restores the VM,
    then the second (busy at first, delivered again) finds a deletion made since it was
    asked for: the one it asked for. The restored, paid VM stays."""
    vm = await world.paid_vm()
    renewal = await world.renew(vm)
    first, second = _asked(world, "a"), _asked(world, "b")
    world.advance(timedelta(seconds=2))
    task = await _delete_held_on_host(world, first)
    with pytest.raises(VmBusy):
        await delete_by_admin(world.deps, second)
    assert (await asyncio.wait_for(world.complete(renewal), GUARD_S)).completed
    world.host.let_go("delete_vm")
    await task
    await world.run_jobs()
    await delete_by_admin(world.deps, second)  # delivered again
    await world.run_jobs()
    await _assert_restored_once(world, vm, renewal.id)
    assert len(await world.history(vm, VmHistoryActionType.DELETED)) == 1


@pytest.mark.parametrize("paid_after_the_second_click", [True, False])
async def test_a_click_during_a_slow_delete_does_not_delete_again(
    world: World, paid_after_the_second_click: bool
) -> None:
    """Click A's job starts, its host call is slow; click B comes while the VM is still live
    (busy); a renewal paid during A's host call restores the VM. B, delivered again, finds a
    deletion recorded after it was asked for (A's is stamped when recorded, not when its job
    began): the one it asked for, so the restored, paid VM stays."""
    vm = await world.paid_vm()
    renewal = await world.renew(vm)
    first = _asked(world, "a")
    world.advance(timedelta(seconds=2))
    task = await _delete_held_on_host(world, first)
    world.advance(timedelta(seconds=3))
    if not paid_after_the_second_click:
        assert (await asyncio.wait_for(world.complete(renewal), GUARD_S)).completed
        world.advance(timedelta(seconds=2))
    second = _asked(world, "b")
    with pytest.raises(VmBusy):
        await delete_by_admin(world.deps, second)
    world.advance(timedelta(seconds=2))
    if paid_after_the_second_click:
        assert (await asyncio.wait_for(world.complete(renewal), GUARD_S)).completed
    world.advance(timedelta(seconds=2))
    world.host.let_go("delete_vm")
    await task
    await world.run_jobs()
    await delete_by_admin(world.deps, second)  # delivered again
    await world.run_jobs()
    await _assert_restored_once(world, vm, renewal.id)
    assert len(await world.history(vm, VmHistoryActionType.DELETED)) == 1
