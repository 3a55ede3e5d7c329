"""Every host call made under a VM's lease renews it while it runs: a resize, an admin's
delete or start, the VM check's start after a renewal and the owner's re-install, each
held on its host for longer than the lease, keep the VM from a second worker."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from app import vm_actions
from app.worker.jobs import delete_by_admin, power_by_admin, process_vm_upgrade
from app.worker.lease_keeper import LeaseKeeper
from app.worker.provisioning import spawn_lease
from domain.model import GIB, Vm
from domain.upgrade import UpgradeConfig
from ports.jobs import DeleteVm, StartVm
from tests.unit.worker.test_host_lease import (
    GUARD_S,
    MINUTE,
    SECOND,
    pass_time,
    short_sleep,
    taken_by_another,
)
from tests.unit.worker.test_resize_once import _book_upgrade
from tests.unit.worker.world import World, new_world


async def _kept_through(
    world: World, vm: Vm, op: str, run: Callable[[], Coroutine[Any, Any, Any]]
) -> None:
    """`run` with the host's `op` held past the lease: the VM's lease stays taken."""
    world.host.hold(op)
    task = asyncio.create_task(run())
    await asyncio.wait_for(world.host.entered(op).wait(), GUARD_S)
    await pass_time(world, world.deps.host_lease + 20 * MINUTE)
    assert not await taken_by_another(world, spawn_lease(vm.id))
    world.host.let_go(op)
    await asyncio.wait_for(task, GUARD_S)
    assert world.host.calls[op] >= 1
    assert await taken_by_another(world, spawn_lease(vm.id))  # given back at the end


@pytest.fixture
async def world() -> World:
    return await new_world(lease_sleep=short_sleep)


async def test_a_long_resize(world: World) -> None:
    vm = await world.paid_vm()
    job = await _book_upgrade(world, vm, UpgradeConfig(new_memory=4 * GIB))
    await world.queue.receive(max_jobs=100, block_ms=0)  # run by hand
    await _kept_through(
        world, vm, "resize_vm", lambda: process_vm_upgrade(world.deps, vm.id, job.config)
    )


async def test_a_long_admin_delete(world: World) -> None:
    vm = await world.paid_vm()
    await _kept_through(
        world, vm, "delete_vm", lambda: delete_by_admin(world.deps, DeleteVm(vm_id=vm.id))
    )


async def test_a_long_admin_start(world: World) -> None:
    vm = await world.paid_vm()
    await _kept_through(
        world, vm, "start_vm", lambda: power_by_admin(world.deps, StartVm(vm_id=vm.id))
    )


async def test_a_long_start_after_a_renewal(world: World) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    await world.lifecycle()  # stopped at its expiry
    assert world.host_state(vm.id) == "stopped"
    await world.complete(await world.renew(vm))
    await world.queue.receive(max_jobs=100, block_ms=0)  # the VM check below starts it
    await _kept_through(world, vm, "start_vm", world.vm_check)
    assert world.host_state(vm.id) == "running"


async def test_a_long_owner_reinstall(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        vm_actions, "LeaseKeeper", functools.partial(LeaseKeeper, sleep=short_sleep)
    )
    vm = await world.paid_vm()
    svc, user = await world.owner_api(vm)
    await _kept_through(
        world, vm, "reinstall_vm", lambda: vm_actions.run_action(svc, user, vm.id, "re-install")
    )
