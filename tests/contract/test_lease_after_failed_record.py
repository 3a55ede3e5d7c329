"""A worker whose host call succeeded but whose recording transaction failed gives the VM's
leases back (r21 S2), on memory, SQLite and MariaDB: they were held for their whole term
(15 minutes), and a start of a VM its owner had just paid for waited that long. Only the
leases it still holds: one another worker took over meanwhile stays that worker's. A
release that fails as well is logged and hides no error of the host."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import TracebackType
from typing import Any

import attrs
import pytest

from app.worker.jobs import power_by_admin
from app.worker.lifecycle import lease_name
from app.worker.provisioning import check_vm, spawn_lease
from domain.enums import VmHistoryActionType as H
from domain.lifecycle import DueAction, LifecycleAction
from domain.model import Vm
from ports.jobs import StartVm
from ports.storage import UnitOfWork, UnitOfWorkFactory
from tests.contract import lifecycle_world, storage_backends
from tests.unit.worker.world import World

SECOND = timedelta(seconds=1)
#: a bound so a regression fails instead of hanging
GUARD_S = 30
# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database
# pytest fixture: the worker world over this module's backend
world = lifecycle_world.world


class RecordingDown(Exception):
    """The storage failing under a recording transaction (a lost connection, say)."""


@attrs.define
class _Arm:
    """How many history writes (each host action's record adds one) and how many lease
    releases fail from now on."""

    failures: int = 0
    releases: int = 0


class _History:
    def __init__(self, inner: Any, arm: _Arm) -> None:
        self._inner, self._arm = inner, arm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def add(self, *args: Any, **kwargs: Any) -> Any:
        if self._arm.failures > 0:
            self._arm.failures -= 1
            raise RecordingDown("the recording transaction failed")
        return await self._inner.add(*args, **kwargs)


class _Leases:
    def __init__(self, inner: Any, arm: _Arm) -> None:
        self._inner, self._arm = inner, arm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def release(self, name: str, token: str) -> bool:
        if self._arm.releases > 0:
            self._arm.releases -= 1
            raise RecordingDown("the release failed too")
        released: bool = await self._inner.release(name, token)
        return released


class _Uow:
    """A unit of work whose history writes fail while `arm` says so (then rolled back)."""

    def __init__(self, inner: UnitOfWork, arm: _Arm) -> None:
        self._inner, self._arm = inner, arm

    async def __aenter__(self) -> _Uow:
        self._inner = await self._inner.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any:
        return await self._inner.__aexit__(kind, exc, tb)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        if name == "vm_history":
            return _History(found, self._arm)
        return _Leases(found, self._arm) if name == "worker_leases" else found


def _failing(world: World) -> _Arm:
    """The worker's storage made to fail its next recordings once armed."""
    arm = _Arm()
    inner: UnitOfWorkFactory = world.deps.uow_factory

    def factory() -> Any:
        return _Uow(inner(), arm)

    world.deps = attrs.evolve(world.deps, uow_factory=factory)
    return arm


async def _free(world: World, name: str) -> bool:
    """Whether another worker could take the lease now (it gives it back at once)."""
    now = world.now
    async with world.shop.factory() as uow:
        token = await uow.worker_leases.take(name, now, now - world.deps.host_lease)
        if token is not None:
            await uow.worker_leases.release(name, token)
        await uow.commit()
    return token is not None


async def _expired(world: World) -> tuple[Vm, DueAction]:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    return vm, DueAction(
        subscription_id=sub.id, action=LifecycleAction.STOP_ON_EXPIRY, period=sub.expires
    )


async def test_an_expiry_stop_whose_recording_fails_gives_its_leases_back(world: World) -> None:
    vm, due = await _expired(world)
    arm = _failing(world)
    arm.failures = 1
    [run] = await world.lifecycle()  # the failure is logged, the action left to the next run
    assert [d.action for d in run.failed] == [LifecycleAction.STOP_ON_EXPIRY]
    assert world.host_state(vm.id) == "stopped"  # the host acted
    assert await world.history(vm, H.EXPIRED) == []  # nothing recorded
    assert await _free(world, spawn_lease(vm.id)), "the VM stays busy for 15 minutes"
    assert await _free(world, lease_name(due))

    [run] = await world.lifecycle()  # the next run repeats the stop and records it, once
    assert LifecycleAction.STOP_ON_EXPIRY in [d.action for d in run.done]
    assert len(await world.history(vm, H.EXPIRED)) == 1
    assert await _free(world, spawn_lease(vm.id))


async def test_a_vm_check_start_whose_recording_fails_gives_the_lease_back(world: World) -> None:
    """The VM stopped at its expiry is paid again; the VM check starts it, and the Started
    entry fails to be written: the lease is free again (a later check finds it running)."""
    vm, _ = await _expired(world)
    await world.lifecycle()
    assert world.host_state(vm.id) == "stopped"
    await world.complete(await world.renew(vm))
    await world.queue.receive(max_jobs=100, block_ms=0)  # its CheckVm is run by hand
    arm = _failing(world)
    arm.failures = 1
    with pytest.raises(RecordingDown):
        await check_vm(world.deps, vm.id)
    assert world.host_state(vm.id) == "running"
    assert len(await world.history(vm, H.STARTED)) == 1  # its build's only
    assert await _free(world, spawn_lease(vm.id)), "the VM stays busy for 15 minutes"

    await check_vm(world.deps, vm.id)
    assert world.host_state(vm.id) == "running"
    assert await _free(world, spawn_lease(vm.id))


async def test_a_failed_recording_never_releases_a_lease_another_worker_took(
    world: World,
) -> None:
    """The stop's host call outlives its leases (not renewed: the worker is stalled), a
    second worker takes them over as stale, then the first one's recording fails: the
    second worker's leases stay held; they are its own to release."""
    vm, due = await _expired(world)
    arm = _failing(world)
    world.host.hold("stop_vm")
    stopping = asyncio.create_task(world.lifecycle())
    await asyncio.wait_for(world.host.entered("stop_vm").wait(), GUARD_S)
    world.advance(world.deps.host_lease + SECOND)  # stale: no renewal ran meanwhile
    now = world.now
    names = (spawn_lease(vm.id), lease_name(due))
    async with world.shop.factory() as uow:
        tokens = [await uow.worker_leases.take(n, now, now - world.deps.host_lease) for n in names]
        await uow.commit()
    assert None not in tokens
    arm.failures = 1
    world.host.let_go("stop_vm")
    [run] = await asyncio.wait_for(stopping, GUARD_S)
    assert [d.action for d in run.failed] == [LifecycleAction.STOP_ON_EXPIRY]
    assert await world.history(vm, H.EXPIRED) == []
    for name in names:
        assert not await _free(world, name), f"{name}: the second worker's lease was released"
    async with world.shop.factory() as uow:
        for name, token in zip(names, tokens, strict=True):
            assert token is not None and await uow.worker_leases.release(name, token)
        await uow.commit()


async def test_a_vm_stopped_again_after_its_expiry_whose_recording_fails_gives_the_lease_back(
    world: World,
) -> None:
    """Its host booted the expired VM again; the VM check stops it and the Expired entry
    fails to be written: the lease is free again, and a later check records nothing twice."""
    vm, _ = await _expired(world)
    await world.lifecycle()
    await world.host.inner.start_vm(vm)  # a node reboot started it
    arm = _failing(world)
    arm.failures = 1
    with pytest.raises(RecordingDown):
        await check_vm(world.deps, vm.id)
    assert world.host_state(vm.id) == "stopped"
    assert len(await world.history(vm, H.EXPIRED)) == 1  # the lifecycle's only
    assert await _free(world, spawn_lease(vm.id)), "the VM stays busy for 15 minutes"


async def test_a_release_that_fails_too_hides_no_error_of_the_host(world: World) -> None:
    """The lease is given back best effort: a release that fails as well is logged, and the
    job fails with the host's own error, not the release's."""
    vm = await world.paid_vm()
    arm = _failing(world)
    world.host.refused.add("start_vm")
    arm.releases = 1
    with pytest.raises(Exception, match="start_vm: refused"):
        await power_by_admin(world.deps, StartVm(vm_id=vm.id))
    assert arm.releases == 0  # the release was tried
