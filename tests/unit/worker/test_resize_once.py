"""A paid upgrade stops and resizes its VM once, however often or at once its job comes."""

from __future__ import annotations

import asyncio

import pytest

from app.billing.upgrades import create_upgrade_payment
from app.worker.jobs import VmBusy, process_vm_upgrade
from app.worker.provisioning import spawn_vm
from domain.model import GIB, Vm
from domain.upgrade import AS_RECORDED, UpgradeConfig
from ports.jobs import ProcessVmUpgrade
from tests.unit.billing.world import ALICE
from tests.unit.worker.world import World

BIGGER, BIGGEST = UpgradeConfig(new_memory=4 * GIB), UpgradeConfig(new_memory=8 * GIB)


async def _book_upgrade(world: World, vm: Vm, cfg: UpgradeConfig) -> ProcessVmUpgrade:
    """Pay an upgrade: its booking writes the records, marks the VM and queues this job."""
    shop = world.shop
    payment = await create_upgrade_payment(
        shop.factory, shop.clock, shop.rails, shop.rates, user_id=ALICE, vm_id=vm.id, cfg=cfg
    )
    report = await world.complete(payment)
    [job] = [j for j in report.jobs if isinstance(j, ProcessVmUpgrade)]
    return job


def _completed(world: World, vm: Vm) -> int:
    return len(world.notifier.titled(f"[VM{vm.id}] Upgrade Complete"))


@pytest.mark.parametrize("again", ["booked", "as recorded"])
async def test_a_resize_job_delivered_again_after_its_resize_does_nothing(
    world: World, again: str
) -> None:
    """Before: the booking's job delivered a second time (its ack lost, claimed by a second
    worker) stopped the paid VM, resized it again and told the user "Upgrade Complete"
    twice; only the VM check's re-send (`AS_RECORDED`) looked at the cleared mark."""
    vm = await world.paid_vm()
    job = await _book_upgrade(world, vm, BIGGER)
    await world.run_jobs()
    assert world.host.calls.get("resize_vm") == 1 and world.host.calls.get("stop_vm") == 1
    assert (await world.shop.vm(vm.id)).resize_requested is None
    assert _completed(world, vm) == 1

    repeat = job if again == "booked" else ProcessVmUpgrade(vm_id=vm.id, config=AS_RECORDED)
    await world.queue.send(repeat)
    await world.run_jobs()

    assert world.host.calls.get("resize_vm") == 1 and world.host.calls.get("stop_vm") == 1
    assert world.host.sizes[vm.id].memory == 4 * GIB
    assert world.host_state(vm.id) == "running"
    assert _completed(world, vm) == 1
    assert world.queue.pending_count == 0


async def test_an_upgrade_paid_after_the_first_was_made_resizes_again(world: World) -> None:
    vm = await world.paid_vm()
    first = await _book_upgrade(world, vm, BIGGER)
    await world.run_jobs()

    second = await _book_upgrade(world, vm, BIGGEST)
    await world.run_jobs()

    assert world.host.sizes[vm.id].memory == 8 * GIB
    assert world.host.calls.get("resize_vm") == 2 and world.host.calls.get("stop_vm") == 2
    assert _completed(world, vm) == 2
    for job in (first, second):  # both delivered again: nothing more
        await world.queue.send(job)
    await world.run_jobs()
    assert world.host.calls.get("resize_vm") == 2 and world.host.calls.get("stop_vm") == 2
    assert _completed(world, vm) == 2
    assert world.host.sizes[vm.id].memory == 8 * GIB


async def test_two_deliveries_at_once_resize_once(world: World) -> None:
    """The second delivery finds the VM's lease held while the host resizes: it fails
    (transient), and delivered again once the first is done, it finds nothing to do."""
    vm = await world.paid_vm()
    job = await _book_upgrade(world, vm, BIGGER)
    await world.queue.receive(max_jobs=100, block_ms=0)  # the booking's jobs: run by hand
    world.host.hold("resize_vm")
    first = asyncio.create_task(process_vm_upgrade(world.deps, vm.id, job.config))
    await world.host.entered("resize_vm").wait()

    with pytest.raises(VmBusy) as busy:  # not waiting on the held host: refused at once
        await asyncio.wait_for(process_vm_upgrade(world.deps, vm.id, job.config), 5)
    assert busy.value.transient
    world.host.let_go("resize_vm")
    await first
    await process_vm_upgrade(world.deps, vm.id, job.config)

    assert world.host.calls.get("resize_vm") == 1 and world.host.calls.get("stop_vm") == 1
    assert world.host_state(vm.id) == "running"
    assert _completed(world, vm) == 1
    assert (await world.shop.vm(vm.id)).resize_requested is None


async def test_an_upgrade_paid_while_its_vm_is_built_resizes_it_once_built(world: World) -> None:
    """Before the resize took the VM's lease, its job found the VM not built yet, cleared
    the mark and told the user the upgrade was made, while the spawn under way (which had
    read the old size) built the VM small."""
    vm = await world.shop.order()
    await world.complete(await world.renew(vm))
    await world.queue.receive(max_jobs=100, block_ms=0)  # the SpawnVm: run by hand
    world.host.hold("create_vm")
    building = asyncio.create_task(spawn_vm(world.deps, vm.id))
    await world.host.entered("create_vm").wait()
    job = await _book_upgrade(world, vm, BIGGER)
    await world.queue.receive(max_jobs=100, block_ms=0)

    with pytest.raises(VmBusy):
        await process_vm_upgrade(world.deps, vm.id, job.config)
    assert _completed(world, vm) == 0
    world.host.let_go("create_vm")
    assert await building
    assert world.host.sizes[vm.id].memory < 4 * GIB  # built at the size it read
    await process_vm_upgrade(world.deps, vm.id, job.config)  # delivered again

    assert world.host.sizes[vm.id].memory == 4 * GIB
    assert world.host_state(vm.id) == "running"
    assert _completed(world, vm) == 1
    assert (await world.shop.vm(vm.id)).resize_requested is None
