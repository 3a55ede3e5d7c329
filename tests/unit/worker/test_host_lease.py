"""The worker's lease on a VM's host work is short (15 minutes) and renewed while a host call
runs: a long create keeps it, and a worker that died mid-call frees it 15 minutes later."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import attrs
import pytest

from adapters.vmhost.proxmox_api import ProxmoxConfig
from app import vm_actions
from app.worker.context import HOST_LEASE, WorkerDeps
from app.worker.jobs import power_by_admin
from app.worker.lease_keeper import LeaseKeeper
from app.worker.lifecycle import lease_name
from app.worker.provisioning import spawn_lease, spawn_vm
from domain.lifecycle import DueAction, LifecycleAction
from domain.model import Vm
from ports.jobs import StartVm
from tests.unit.worker.world import World, new_world

MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)
#: a bound so a regression fails instead of hanging
GUARD_S = 30


async def short_sleep(seconds: float) -> None:
    """The keeper's pause between renewals, in tests: real but short."""
    await asyncio.sleep(0.001)


async def pass_time(world: World, total: timedelta) -> None:
    """Move the clock by `total` in steps of four minutes (under a third of the lease),
    letting the renewals run after each step."""
    moved = timedelta(0)
    while moved < total:
        step = min(4 * MINUTE, total - moved)
        world.advance(step)
        moved += step
        await asyncio.sleep(0.05)


async def taken_by_another(world: World, name: str) -> bool:
    """Whether a second worker, now, could take the lease (and then gives it back)."""
    now = world.now
    async with world.shop.factory() as uow:
        token = await uow.worker_leases.take(name, now, now - world.deps.host_lease)
        if token is not None:
            await uow.worker_leases.release(name, token)
        await uow.commit()
    return token is not None


def test_the_lease_is_short() -> None:
    assert timedelta(0) < HOST_LEASE <= timedelta(minutes=15)
    assert attrs.fields(WorkerDeps).host_lease.default == HOST_LEASE


def test_long_proxmox_limits_are_accepted() -> None:
    """The lease no longer bounds a host call: a slow task limit is the operator's choice."""
    assert ProxmoxConfig(base_url="", node="", token="", task_timeout_s=3600).task_timeout_s == 3600


async def test_a_long_create_keeps_its_lease_from_a_second_worker() -> None:
    world = await new_world(lease_sleep=short_sleep)
    vm = await world.shop.order()
    await world.complete(await world.renew(vm))
    await world.queue.receive(max_jobs=100, block_ms=0)  # the spawn is run by hand
    world.host.hold("create_vm")  # a create that takes far longer than the lease
    building = asyncio.create_task(spawn_vm(world.deps, vm.id))
    await asyncio.wait_for(world.host.entered("create_vm").wait(), GUARD_S)

    await pass_time(world, world.deps.host_lease + 20 * MINUTE)
    assert not await taken_by_another(world, spawn_lease(vm.id))

    world.host.let_go("create_vm")
    assert await asyncio.wait_for(building, GUARD_S)
    assert world.host.calls["create_vm"] == 1
    assert await taken_by_another(world, spawn_lease(vm.id))  # released with the build


async def test_a_long_expiry_stop_keeps_its_leases() -> None:
    """The lifecycle's stop holds its own lease and the VM's; both are renewed."""
    world = await new_world(lease_sleep=short_sleep)
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    world.host.hold("stop_vm")
    stopping = asyncio.create_task(world.lifecycle())
    await asyncio.wait_for(world.host.entered("stop_vm").wait(), GUARD_S)

    await pass_time(world, world.deps.host_lease + 20 * MINUTE)
    stop = DueAction(
        subscription_id=sub.id, action=LifecycleAction.STOP_ON_EXPIRY, period=sub.expires
    )
    assert not await taken_by_another(world, spawn_lease(vm.id))
    assert not await taken_by_another(world, lease_name(stop))

    world.host.let_go("stop_vm")
    [run] = await asyncio.wait_for(stopping, GUARD_S)
    assert LifecycleAction.STOP_ON_EXPIRY in [d.action for d in run.done]
    assert world.host.calls["stop_vm"] == 1


async def test_renewals_end_with_the_call() -> None:
    world = await new_world(lease_sleep=short_sleep)
    vm = await world.paid_vm()
    keeper = LeaseKeeper(
        uow_factory=world.shop.factory, clock=world.clock, lease=HOST_LEASE, sleep=short_sleep
    )
    name = spawn_lease(vm.id)
    async with world.shop.factory() as uow:
        token = await uow.worker_leases.take(name, world.now, world.now - HOST_LEASE)
        assert token is not None
        await uow.commit()
    async with keeper.kept({name: token}):
        await pass_time(world, 10 * MINUTE)
    await pass_time(world, HOST_LEASE + SECOND)  # no renewal since the block ended
    assert await taken_by_another(world, name)


async def test_a_lost_lease_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    world = await new_world()
    keeper = LeaseKeeper(
        uow_factory=world.shop.factory, clock=world.clock, lease=HOST_LEASE, sleep=short_sleep
    )
    with caplog.at_level(logging.WARNING, logger="lnvps.worker"):
        async with keeper.kept({"spawn:9": "a-token-nobody-holds"}):
            await asyncio.sleep(0.05)
    lost = [r for r in caplog.records if "spawn:9 was lost" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.WARNING  # then no longer renewed


class FailingOnce:
    """A unit-of-work factory whose first unit of work fails (the database was away)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failed = False

    def __call__(self) -> Any:
        if not self.failed:
            self.failed = True
            raise ConnectionError("database unreachable")
        return self.inner()


async def test_a_failed_renewal_is_tried_again(caplog: pytest.LogCaptureFixture) -> None:
    world = await new_world()
    factory = FailingOnce(world.shop.factory)
    keeper = LeaseKeeper(
        uow_factory=factory, clock=world.clock, lease=HOST_LEASE, sleep=short_sleep
    )
    name = spawn_lease(1)
    async with world.shop.factory() as uow:
        token = await uow.worker_leases.take(name, world.now, world.now - HOST_LEASE)
        assert token is not None
        await uow.commit()
    with caplog.at_level(logging.WARNING, logger="lnvps.worker"):
        async with keeper.kept({name: token}):
            await pass_time(world, HOST_LEASE + 5 * MINUTE)
            assert not await taken_by_another(world, name)
    assert factory.failed
    assert any("could not renew lease spawn:1" in r.getMessage() for r in caplog.records)


# --- A worker that died holding a VM's lease ------------------------------------------


async def _dead_worker_holds(world: World, vm: Vm) -> None:
    """A worker took the VM's lease for a host call and was killed (a deploy, kill -9)."""
    async with world.shop.factory() as uow:
        token = await uow.worker_leases.take(spawn_lease(vm.id), world.now, world.now)
        assert token is not None
        await uow.commit()


async def test_the_owner_can_start_again_15_minutes_after_a_worker_died(world: World) -> None:
    vm = await world.paid_vm()
    svc, user = await world.owner_api(vm)
    await _dead_worker_holds(world, vm)
    world.advance(15 * MINUTE - SECOND)
    with pytest.raises(vm_actions.VmBusy):
        await vm_actions.run_action(svc, user, vm.id, "start")
    world.advance(2 * SECOND)
    await vm_actions.run_action(svc, user, vm.id, "start")
    assert world.host.calls["start_vm"] == 2  # the build's and this one


async def test_the_worker_can_start_again_15_minutes_after_another_died(world: World) -> None:
    vm = await world.paid_vm()
    await _dead_worker_holds(world, vm)
    world.advance(15 * MINUTE + SECOND)
    await power_by_admin(world.deps, StartVm(vm_id=vm.id))  # not VmBusy
    assert world.host.calls["start_vm"] == 2
