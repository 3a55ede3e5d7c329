"""A spawn killed after building the VM on its host but before saving it (kill -9 e2e finding):
the next SpawnVm or VM check removes the leftover and builds the VM clean, with addresses."""

from __future__ import annotations

import pytest

from app.worker.provisioning import full_info
from domain.enums import VmHistoryActionType as H
from domain.model import Vm
from ports.vmhost import VmBuildInProgress
from tests.unit.worker.world import World


async def _paid_but_left_half_built(world: World) -> Vm:
    """Paid; the dead spawn's host VM exists and runs, nothing of it was committed."""
    vm = await world.shop.order()
    await world.complete(await world.renew(vm))
    async with world.shop.factory() as uow:
        info = await full_info(uow, vm, ())
    await world.host.inner.create_vm(info)
    await world.host.inner.start_vm(vm)
    assert not (await world.shop.vm(vm.id)).is_provisioned
    return vm


async def _built_once_with_addresses(world: World, vm: Vm) -> None:
    built = await world.shop.vm(vm.id)
    assert built.is_provisioned
    async with world.shop.factory() as uow:
        assert await uow.ip_assignments.list_by_vm(vm.id)
    assert world.host_state(vm.id) == "running"
    assert world.host.calls.get("delete_vm") == 1  # the leftover
    assert world.host.calls.get("create_vm") == 1
    assert len(await world.history(vm, H.STARTED)) == 1


async def test_the_retried_spawn_job_rebuilds_the_leftover(world: World) -> None:
    vm = await _paid_but_left_half_built(world)
    await world.run_jobs()  # the SpawnVm the completion sent
    await _built_once_with_addresses(world, vm)


async def test_the_vm_check_rebuilds_the_leftover_when_the_job_was_lost(world: World) -> None:
    vm = await _paid_but_left_half_built(world)
    report = await world.vm_check()  # the in-process job died with the process
    assert report.failed == []
    await _built_once_with_addresses(world, vm)


async def test_a_vm_its_host_still_builds_is_not_deleted_but_built_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create that outlived its wait (Proxmox goes on with it) is no leftover: the host
    refuses its delete as a build in progress, and the spawn goes on to its create (which
    on Proxmox waits for that same build) instead of failing until the build ends."""
    vm = await _paid_but_left_half_built(world)
    deletes: list[int] = []

    async def still_building(target: Vm) -> None:
        deletes.append(target.id)
        raise VmBuildInProgress(target.id)

    monkeypatch.setattr(world.host, "delete_vm", still_building)
    await world.run_jobs()  # the SpawnVm the completion sent

    assert deletes == [vm.id] * world.deps.retry.attempts
    assert (await world.shop.vm(vm.id)).is_provisioned
    assert world.host.calls.get("create_vm") == 1
    assert len(await world.history(vm, H.STARTED)) == 1
