"""Whatever starts a VM does so under the VM's lease (`spawn_lease`), and the expiry stop
holds that lease during its host call (review r2), on memory, SQLite and MariaDB.

The stop is claimed once per period (D15): a start landing after it would leave the expired
VM running through its whole grace. So each start (an upgrade's resize, an admin's StartVm,
the owner's start, a build, the VM check's start of a renewed VM) judges "paid" under the
lease right before the host starts the VM, and the stop waits for a start under way, then
stops what it started. A paid VM is never left stopped by it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from app import vm_actions
from app.billing.upgrades import create_upgrade_payment
from app.services import Services
from app.worker.jobs import VmBusy, VmNotRunnable, power_by_admin, process_vm_upgrade
from app.worker.provisioning import check_vm, spawn_lease, spawn_vm
from domain.enums import VmHistoryActionType as H
from domain.lifecycle import LifecycleAction
from domain.model import GIB, User, Vm
from domain.upgrade import UpgradeConfig
from ports.jobs import ProcessVmUpgrade, StartVm
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import ALICE
from tests.unit.worker.world import World

SECOND = timedelta(seconds=1)
#: a generous bound so a regression fails instead of hanging; no test asserts a duration
GUARD_S = 30
# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database
# pytest fixture: the worker world over this module's backend
world = lifecycle_world.world


# --- An upgrade's resize -----------------------------------------------------
# An upgrade's resize that straddles the expiry (review r2): the resize holds the VM's lease
# (`spawn_lease`) through stop, resize and start, and the expiry stop takes that lease too, so
# the stop waits for the resize, and the resize reads the paid time again right before its
# start. The period's one stop (D15) is never followed by a start of the expired VM.


async def _slow_upgrade(world: World, op: str) -> tuple[Vm, asyncio.Task[None]]:
    """A paid VM whose upgrade, bought two minutes before its paid time ends, hangs in `op`
    on the host (a disk resize, a start that takes minutes)."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires - 120 * SECOND)  # quotes are allowed then
    shop = world.shop
    payment = await create_upgrade_payment(
        shop.factory, shop.clock, shop.rails, shop.rates,
        user_id=ALICE, vm_id=vm.id, cfg=UpgradeConfig(new_memory=4 * GIB),
    )  # fmt: skip
    report = await world.complete(payment)
    [job] = [j for j in report.jobs if isinstance(j, ProcessVmUpgrade)]
    await world.queue.receive(max_jobs=100, block_ms=0)  # the resize job is run by hand
    world.host.hold(op)
    resizing = asyncio.create_task(process_vm_upgrade(world.deps, vm.id, job.config))
    await asyncio.wait_for(world.host.entered(op).wait(), GUARD_S)
    return vm, resizing


async def test_a_resize_over_the_expiry_leaves_the_expired_vm_stopped(world: World) -> None:
    vm, resizing = await _slow_upgrade(world, "resize_vm")
    sub = await world.sub(vm)
    assert sub.expires is not None

    world.at(sub.expires + SECOND)  # paid time over while the host resizes
    [run] = await world.lifecycle()
    assert LifecycleAction.STOP_ON_EXPIRY not in [d.action for d in run.done]  # it waits
    assert world.host_state(vm.id) == "stopped"  # by the resize

    world.host.let_go("resize_vm")
    await resizing
    assert world.host_state(vm.id) == "stopped"  # not started: read again, unpaid
    assert world.host.calls.get("start_vm") == 1  # its first build's only
    [run] = await world.lifecycle()
    assert LifecycleAction.STOP_ON_EXPIRY in [d.action for d in run.done]
    assert world.notifier.titled(f"[VM{vm.id}] Expired")

    await world.lifecycle(runs=20, step=timedelta(hours=1))
    await world.vm_check()
    await world.run_jobs()
    assert world.host_state(vm.id) == "stopped", "expired VM left running by the upgrade"


async def test_a_start_of_a_resize_over_the_expiry_is_followed_by_the_stop(world: World) -> None:
    """The resize read "paid" and its start hangs on the host past the expiry: the stop
    waits for the resize's lease and then stops the VM the start turned on."""
    vm, resizing = await _slow_upgrade(world, "start_vm")
    sub = await world.sub(vm)
    assert sub.expires is not None

    world.at(sub.expires + SECOND)
    [run] = await world.lifecycle()
    assert LifecycleAction.STOP_ON_EXPIRY not in [d.action for d in run.done]
    world.host.let_go("start_vm")
    await resizing
    assert world.host_state(vm.id) == "running"

    await world.lifecycle(runs=20, step=timedelta(hours=1))
    await world.vm_check()
    await world.run_jobs()
    assert world.host_state(vm.id) == "stopped", "expired VM left running by the upgrade"
    assert len(await world.history(vm, H.EXPIRED)) == 1


async def test_a_renewal_before_the_stop_is_recorded_starts_the_resized_vm(
    world: World,
) -> None:
    """The resize left the VM stopped for want of paid time and said so (history Expired):
    a renewal completing before the lifecycle's stop starts it again, so a paid VM is not
    left stopped (the lifecycle's stop is then no longer due)."""
    vm, resizing = await _slow_upgrade(world, "resize_vm")
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    world.host.let_go("resize_vm")
    await resizing
    assert world.host_state(vm.id) == "stopped"
    [left] = await world.history(vm, H.EXPIRED)
    assert left.description == f"VM {vm.id} expired during its upgrade; left stopped"

    await world.complete(await world.renew(vm))
    await world.run_jobs()
    assert world.host_state(vm.id) == "running"
    await world.lifecycle(runs=3, step=timedelta(hours=1))
    await world.vm_check()
    assert world.host_state(vm.id) == "running"
    assert not world.notifier.titled(f"[VM{vm.id}] Expired")


# --- An admin's StartVm ------------------------------------------------------
# An admin's StartVm around the expiry (review r2): the start judges "paid" under the VM's
# lease (`spawn_lease`) and holds it until it is recorded; the expiry stop holds that lease
# too. A start the host carries out after the paid time ended is followed by the stop, and a
# start during the stop's host call is refused, never left running through the grace.


async def test_admin_start_just_before_expiry_is_followed_by_the_expiry_stop(
    world: World,
) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires - 2 * SECOND)
    world.host.hold("start_vm")  # the host is slow to carry the start out
    starting = asyncio.create_task(power_by_admin(world.deps, StartVm(vm_id=vm.id)))
    await asyncio.wait_for(world.host.entered("start_vm").wait(), GUARD_S)

    world.at(sub.expires + SECOND)
    [run] = await world.lifecycle()  # the start holds the VM: the stop waits for it
    assert LifecycleAction.STOP_ON_EXPIRY not in [d.action for d in run.done]
    world.host.let_go("start_vm")
    await starting

    await world.lifecycle(runs=20, step=timedelta(hours=1))
    await world.vm_check()
    assert world.host_state(vm.id) == "stopped", "expired VM left running"
    assert len(await world.history(vm, H.EXPIRED)) == 1


async def test_admin_start_while_the_vm_is_busy_starts_nothing(world: World) -> None:
    """A start of a paid VM whose lease another worker holds (a build, a resize: each starts
    a paid VM itself) fails with VmBusy and starts nothing; with the lease free it starts."""
    vm = await world.paid_vm()
    async with world.shop.factory() as uow:
        held = await uow.worker_leases.take(spawn_lease(vm.id), world.now, world.now)
        assert held is not None
        await uow.commit()
    with pytest.raises(VmBusy):
        await power_by_admin(world.deps, StartVm(vm_id=vm.id))
    assert world.host.calls.get("start_vm") == 1  # its build's only
    async with world.shop.factory() as uow:
        assert await uow.worker_leases.release(spawn_lease(vm.id), held)
        await uow.commit()
    await power_by_admin(world.deps, StartVm(vm_id=vm.id))
    assert world.host.calls.get("start_vm") == 2
    async with world.shop.factory() as uow:  # released with the record
        assert await uow.worker_leases.take(spawn_lease(vm.id), world.now, world.now)


async def test_admin_start_during_the_expiry_stop_is_refused(world: World) -> None:
    """A start asked for while the worker stops the expired VM (its host is slow) is refused
    ("Cannot start expired VM"), and keeps no lease."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    world.host.hold("stop_vm")
    stopping = asyncio.create_task(world.lifecycle())
    await asyncio.wait_for(world.host.entered("stop_vm").wait(), GUARD_S)
    with pytest.raises(VmNotRunnable, match="Cannot start expired VM"):
        await power_by_admin(world.deps, StartVm(vm_id=vm.id))
    world.host.let_go("stop_vm")
    await stopping
    assert world.host_state(vm.id) == "stopped"
    assert world.host.calls.get("start_vm") == 1
    async with world.shop.factory() as uow:  # the stop released it with its record
        assert await uow.worker_leases.take(spawn_lease(vm.id), world.now, world.now)


async def test_a_failed_admin_start_gives_the_lease_back(world: World) -> None:
    vm = await world.paid_vm()
    world.host.refused.add("start_vm")
    with pytest.raises(Exception, match="start_vm: refused"):
        await power_by_admin(world.deps, StartVm(vm_id=vm.id))
    world.host.refused.clear()
    await power_by_admin(world.deps, StartVm(vm_id=vm.id))  # not VmBusy
    assert len(await world.history(vm, H.STARTED)) == 2


# --- The owner's start -------------------------------------------------------
# The owner's start (PATCH /vm/{id}/start, `app.vm_actions.run_action`) around the expiry:
# it calls the host itself, so it judges "paid" under the VM's lease (`spawn_lease`) and holds
# it until its history entry is recorded, as the worker's expiry stop holds it during its
# host call. A start the host carries out after the paid time ended is followed by the stop;
# a VM the worker holds right now is a 409 (tried again), an expired one a 422.


def _services(world: World) -> Services:
    shop = world.shop
    return Services(
        uow_factory=shop.factory,
        clock=shop.clock,
        rails=shop.rails,
        rates=shop.rates,
        queue=world.queue,
        hosts=world.deps.hosts,
    )


async def _owner(world: World, vm: Vm) -> User:
    async with world.shop.factory() as uow:
        user = await uow.users.get(vm.user_id)
    assert user is not None
    return user


async def test_a_user_start_just_before_expiry_is_followed_by_the_stop(world: World) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    svc, user = _services(world), await _owner(world, vm)
    world.at(sub.expires - 2 * SECOND)
    world.host.hold("start_vm")  # the host is slow to carry the start out
    starting = asyncio.create_task(vm_actions.run_action(svc, user, vm.id, "start"))
    await asyncio.wait_for(world.host.entered("start_vm").wait(), GUARD_S)

    world.at(sub.expires + SECOND)
    [run] = await world.lifecycle()  # the start holds the VM: the stop waits for it
    assert LifecycleAction.STOP_ON_EXPIRY not in [d.action for d in run.done]
    world.host.let_go("start_vm")
    await starting

    await world.lifecycle(runs=20, step=timedelta(hours=1))
    await world.vm_check()
    await world.run_jobs()
    assert world.host_state(vm.id) == "stopped", "expired VM left running"
    assert len(await world.history(vm, H.EXPIRED)) == 1
    with pytest.raises(vm_actions.VmExpired):  # 422 once the paid time is over
        await vm_actions.run_action(svc, user, vm.id, "start")


@pytest.mark.parametrize("action", ["start", "restart", "re-install"])
async def test_a_user_action_on_a_busy_vm_is_a_conflict(world: World, action: str) -> None:
    """The worker holds the VM's lease (a build, a resize, the expiry stop): 409, no host
    call, no history; a stop needs no lease and goes through."""
    vm = await world.paid_vm()
    svc, user = _services(world), await _owner(world, vm)
    async with world.shop.factory() as uow:
        held = await uow.worker_leases.take(spawn_lease(vm.id), world.now, world.now)
        assert held is not None
        await uow.commit()
    calls = dict(world.host.calls)
    with pytest.raises(vm_actions.VmBusy) as busy:
        await vm_actions.run_action(svc, user, vm.id, action)
    assert busy.value.kind == "conflict"
    assert world.host.calls == calls
    await vm_actions.run_action(svc, user, vm.id, "stop")
    assert world.host_state(vm.id) == "stopped"


async def test_a_failed_user_start_gives_the_lease_back(world: World) -> None:
    vm = await world.paid_vm()
    svc, user = _services(world), await _owner(world, vm)
    world.host.refused.add("start_vm")
    with pytest.raises(vm_actions.VmHostUnavailable):
        await vm_actions.run_action(svc, user, vm.id, "start")
    world.host.refused.clear()
    await vm_actions.run_action(svc, user, vm.id, "start")  # not busy
    async with world.shop.factory() as uow:  # released with the record
        assert await uow.worker_leases.take(spawn_lease(vm.id), world.now, world.now)


# --- A build -----------------------------------------------------------------
# A spawn still building when the paid time ends: the expiry stop waits for the build (it
# holds the VM's build lease, `spawn_lease`) and then stops the VM the build started; a
# spawn that finds the paid time over builds nothing.


async def test_a_build_straddling_the_expiry_is_stopped_once_it_is_built(world: World) -> None:
    vm = await world.shop.order()
    await world.complete(await world.renew(vm))  # queues its SpawnVm
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires - 2 * SECOND)  # the job runs late, just before the paid time ends
    world.host.hold("start_vm")
    building = asyncio.create_task(world.run_jobs())
    await asyncio.wait_for(world.host.entered("start_vm").wait(), GUARD_S)

    world.at(sub.expires + SECOND)
    [run] = await world.lifecycle()  # the build holds the VM: the stop waits for it
    assert LifecycleAction.STOP_ON_EXPIRY not in [d.action for d in run.done]
    world.host.let_go("start_vm")
    await building
    assert world.host_state(vm.id) == "running"

    [run] = await world.lifecycle()
    assert LifecycleAction.STOP_ON_EXPIRY in [d.action for d in run.done]
    await world.lifecycle(runs=20, step=timedelta(hours=1))
    await world.vm_check()
    assert world.host_state(vm.id) == "stopped", "expired VM left running by its build"


async def test_a_spawn_after_the_expiry_builds_nothing(world: World) -> None:
    """The build's claim reads the subscription under its lock: a VM whose paid time is over
    is not built (the VM check's re-spawn of a lost VM read "paid" a moment earlier)."""
    vm = await world.shop.order()
    await world.complete(await world.renew(vm))
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    assert not await spawn_vm(world.deps, vm.id)
    assert "create_vm" not in world.host.calls and world.host_state(vm.id) is None


# --- The VM check's start ----------------------------------------------------
# The VM check's start of a renewed VM its expiry stopped (§9.6 resume rule) judges "paid"
# under the VM's lease (`spawn_lease`), as the expiry stop takes it: a start that hangs on the
# host past the end of the renewed period is followed by that period's stop.


async def _stopped_then_renewed(world: World) -> Vm:
    """A VM stopped at its expiry, then renewed; the renewal's jobs not run: still stopped."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    await world.lifecycle()  # stopped at its expiry
    assert world.host_state(vm.id) == "stopped"
    await world.complete(await world.renew(vm))
    await world.queue.receive(max_jobs=100, block_ms=0)  # its jobs dropped
    return vm


async def test_a_check_start_over_the_next_expiry_is_followed_by_the_stop(world: World) -> None:
    vm = await _stopped_then_renewed(world)
    vm_id = vm.id
    renewed = await world.sub(vm)
    assert renewed.expires is not None
    world.at(renewed.expires - 2 * SECOND)
    world.host.hold("start_vm")
    starting = asyncio.create_task(check_vm(world.deps, vm_id))
    await asyncio.wait_for(world.host.entered("start_vm").wait(), GUARD_S)

    world.at(renewed.expires + SECOND)
    [run] = await world.lifecycle()
    assert LifecycleAction.STOP_ON_EXPIRY not in [d.action for d in run.done]
    world.host.let_go("start_vm")
    await starting

    await world.lifecycle(runs=20, step=timedelta(hours=1))
    await world.vm_check()
    assert world.host_state(vm_id) == "stopped", "expired VM left running by the VM check"
    assert len(await world.history(vm, H.EXPIRED)) == 2


async def test_a_check_leaves_a_busy_vm_to_a_later_check(world: World) -> None:
    vm = await _stopped_then_renewed(world)
    vm_id = vm.id
    async with world.shop.factory() as uow:
        held = await uow.worker_leases.take(spawn_lease(vm_id), world.now, world.now)
        assert held is not None
        await uow.commit()
    await check_vm(world.deps, vm_id)
    assert world.host_state(vm_id) == "stopped"
    async with world.shop.factory() as uow:
        assert await uow.worker_leases.release(spawn_lease(vm_id), held)
        await uow.commit()
    await check_vm(world.deps, vm_id)
    assert world.host_state(vm_id) == "running"
    assert len(await world.history(vm, H.STARTED)) == 2
