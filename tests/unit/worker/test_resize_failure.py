"""A paid upgrade whose resize fails: the VM runs again, a refusal is given up and told once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.billing.upgrades import create_upgrade_payment
from app.worker import jobs
from app.worker.loop import drain
from domain.model import GIB, Vm
from domain.upgrade import AS_RECORDED, UpgradeConfig
from ports.jobs import ProcessVmUpgrade
from ports.vmhost import VmHostError
from tests.unit.billing.world import ALICE
from tests.unit.worker.world import World

BIGGER = UpgradeConfig(new_memory=8 * GIB)


async def _book_upgrade(world: World, vm: Vm) -> None:
    """Pay an upgrade: its booking writes the records, marks the VM and queues the job."""
    shop = world.shop
    payment = await create_upgrade_payment(
        shop.factory, shop.clock, shop.rails, shop.rates, user_id=ALICE, vm_id=vm.id, cfg=BIGGER
    )
    assert (await world.complete(payment)).completed


async def _check_cycles(world: World, runs: int) -> None:
    """`runs` VM checks 11 minutes apart (past the re-send grace), each with its jobs run."""
    for _ in range(runs):
        world.advance(timedelta(minutes=11))
        await world.vm_check()
        await world.run_jobs()


async def test_a_transient_resize_failure_starts_the_paid_vm_again_and_is_retried(
    world: World,
) -> None:
    vm = await world.paid_vm()
    world.host.broken.add("resize_vm")
    await _book_upgrade(world, vm)

    await drain(world.queue, world.handlers, max_jobs=3)  # the job fails on each delivery

    assert world.host_state(vm.id) == "running"
    assert world.host.calls["start_vm"] == 1 + world.host.calls["stop_vm"]
    assert (await world.shop.vm(vm.id)).resize_requested is not None  # still to be made
    world.host.broken.clear()
    await world.run_jobs()  # the queue delivers it again: the host is back
    assert world.host.sizes[vm.id].memory == 8 * GIB
    assert world.host_state(vm.id) == "running"
    assert (await world.shop.vm(vm.id)).resize_requested is None
    assert len(world.notifier.titled(f"[VM{vm.id}] Upgrade Complete")) == 1


async def test_a_refused_resize_is_given_up_and_told_to_the_admins_once(world: World) -> None:
    vm = await world.paid_vm()
    world.host.refused.add("resize_vm")
    await _book_upgrade(world, vm)

    await world.run_jobs()
    await _check_cycles(world, 3)
    await world.queue.send(ProcessVmUpgrade(vm_id=vm.id, config=BIGGER))  # a redelivery
    await world.run_jobs()

    assert world.host_state(vm.id) == "running"
    [notice] = world.notifier.titled(f"VM {vm.id} Resize Failed")
    assert "refused by the host" in notice.message and notice.user_id is None
    assert (await world.shop.vm(vm.id)).resize_requested is None  # no re-send stops it again
    assert world.host.calls["stop_vm"] == 1  # the booked job only: the mark is cleared
    assert world.host.calls["start_vm"] == 2  # the spawn, and after the failed resize
    assert world.notifier.titled(f"[VM{vm.id}] Upgrade Complete") == []


async def test_a_failed_start_after_a_failed_resize_does_not_hide_the_resize_error(
    world: World,
) -> None:
    vm = await world.paid_vm()
    world.host.broken.update({"resize_vm", "start_vm"})
    await _book_upgrade(world, vm)
    await world.queue.receive(max_jobs=100, block_ms=0)  # the booking's jobs: run by hand

    with pytest.raises(VmHostError, match="resize_vm"):
        await jobs.process_vm_upgrade(world.deps, vm.id, AS_RECORDED)
    assert world.host.calls["start_vm"] == 1 + world.deps.retry.attempts  # it was tried


async def test_an_expired_vm_stays_stopped_when_its_resize_fails(world: World) -> None:
    vm = await world.paid_vm()
    await _book_upgrade(world, vm)
    await world.queue.receive(max_jobs=100, block_ms=0)
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + timedelta(minutes=1))
    world.host.refused.add("resize_vm")

    await jobs.process_vm_upgrade(world.deps, vm.id, AS_RECORDED)

    assert world.host_state(vm.id) == "stopped"
    assert world.host.calls["start_vm"] == 1  # the spawn's only
    assert len(world.notifier.titled(f"VM {vm.id} Resize Failed")) == 1
