"""A paid VM its host lost is built again by the VM check; a rebuild that leaves it stopped
(its create outlived every wait and finished later, or its start and the undoing delete both
failed) is started by a later check, and a spawn that finds it on its host stopped starts it:
each start recorded once (history Started)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from app.worker.jobs import build_handlers
from app.worker.provisioning import REBUILT, spawn_vm
from domain.enums import VmHistoryActionType as H
from domain.model import GIB, Vm
from tests.unit.worker.world import OneHost, World, new_world

URI = "test:///default"
POOL = "default-pool"


async def _lose(world: World, vm: Vm) -> None:
    """The host loses the VM (rebuilt, or an admin removed it by hand)."""
    await world.host.inner.delete_vm(vm)
    assert world.host_state(vm.id) is None


async def _rebuilt_entries(world: World, vm: Vm) -> int:
    created = await world.history(vm, H.CREATED)
    return sum(1 for e in created if isinstance(e.metadata, dict) and e.metadata.get(REBUILT))


async def test_a_rebuild_whose_start_and_undo_failed_is_started_by_the_next_check(
    world: World,
) -> None:
    vm = await world.paid_vm()
    assert len(await world.history(vm, H.STARTED)) == 1
    await _lose(world, vm)
    world.host.refused |= {"start_vm", "delete_vm"}

    report = await world.vm_check()  # rebuilt, not started, not removed again
    assert report.failed == [vm.id]
    assert world.host_state(vm.id) == "stopped"
    assert await _rebuilt_entries(world, vm) == 1

    world.host.refused.clear()
    for _ in range(3):  # the next check starts it; later ones leave it running
        assert (await world.vm_check()).failed == []
        await world.run_jobs()
    assert world.host_state(vm.id) == "running"
    assert len(await world.history(vm, H.STARTED)) == 2
    assert await _rebuilt_entries(world, vm) == 1


async def test_a_user_stop_after_a_finished_rebuild_is_kept(world: World) -> None:
    """The rebuild's mark counts only until a power event follows it."""
    vm = await world.paid_vm()
    await _lose(world, vm)
    assert (await world.vm_check()).failed == []  # rebuilt and started at once
    assert world.host_state(vm.id) == "running"
    await world.host.inner.stop_vm(vm)  # the guest powered itself off
    await world.vm_check()
    assert world.host_state(vm.id) == "stopped"
    assert len(await world.history(vm, H.STARTED)) == 2


async def test_a_spawn_that_finds_the_vm_stopped_on_its_host_starts_it(world: World) -> None:
    """The host had no VM when the check looked, but the rebuild that had outlived its wait
    finished before the spawn looked: the spawn starts it instead of leaving it stopped."""
    vm = await world.paid_vm()
    await world.host.inner.stop_vm(vm)
    assert await spawn_vm(world.deps, vm.id) is False  # nothing built
    assert world.host_state(vm.id) == "running"
    assert world.host.calls.get("create_vm") == 1
    assert len(await world.history(vm, H.STARTED)) == 2


class SlowDefine:
    """The client's connection, whose first `defineXML` waits for `release` (a slow define
    that outlives the create's time limit and every retry's wait)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.release = threading.Event()
        self.slow = True

    def defineXML(self, xml: str) -> Any:  # noqa: N802 - libvirt's name
        if self.slow:
            self.slow = False
            self.release.wait(10)
        return self.real.defineXML(xml)

    def close(self) -> int:
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _cleanup(conn: Any) -> None:
    for dom in conn.listAllDomains(0):
        if str(dom.name()).startswith("vm"):
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    for volume in conn.storagePoolLookupByName(POOL).listAllVolumes(0):
        volume.delete(0)


@pytest.fixture
def held() -> Iterator[Any]:
    """A connection to the test driver held for the test (its state lives while one is)."""
    libvirt = pytest.importorskip("libvirt")
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(URI)
    _cleanup(conn)
    yield conn
    _cleanup(conn)
    conn.close()


async def test_a_libvirt_rebuild_that_outlived_its_waits_is_started_once_it_is_done(
    held: Any,
) -> None:
    from adapters.vmhost.libvirt_host import LibvirtVmHost
    from adapters.vmhost.libvirt_xml import image_volume_name

    world = await new_world()
    image_url = "https://example.invalid/debian.img"  # the shop's OS image
    held.storagePoolLookupByName(POOL).createXML(
        f"<volume><name>{image_volume_name(image_url)}</name>"
        f"<capacity unit='bytes'>{GIB}</capacity></volume>",
        0,
    )
    host = LibvirtVmHost(URI, world.clock, storage_pool=POOL, long_call_timeout_s=0.3)
    world.deps = attrs.evolve(world.deps, hosts=OneHost(host))
    world.handlers = build_handlers(world.deps)
    try:
        vm = await world.paid_vm()
        dom = held.lookupByName(f"vm{vm.id}")
        assert dom.isActive()
        dom.destroy()
        dom.undefine()
        slow = SlowDefine(host._connection())
        host._conn = slow

        report = await world.vm_check()  # the create times out, its retries wait in vain
        assert report.failed == [vm.id]
        slow.release.set()
        for _ in range(500):
            if not host.is_building(vm.id):
                break
            await asyncio.sleep(0.01)
        assert not held.lookupByName(f"vm{vm.id}").isActive()  # done, and left stopped

        for _ in range(3):
            await world.vm_check()
            await world.run_jobs()
        assert held.lookupByName(f"vm{vm.id}").isActive()
        assert len(await world.history(vm, H.STARTED)) == 2
        assert await _rebuilt_entries(world, vm) == 1
    finally:
        await host.aclose()
