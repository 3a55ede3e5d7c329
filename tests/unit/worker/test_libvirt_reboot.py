"""A libvirt hypervisor's reboot through the worker: paid VMs come back, expired ones stay off."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import attrs
import pytest

libvirt = pytest.importorskip("libvirt")

from adapters.vmhost.libvirt_host import LibvirtVmHost  # noqa: E402
from adapters.vmhost.libvirt_xml import image_volume_name  # noqa: E402
from app.worker.jobs import build_handlers  # noqa: E402
from domain.model import GIB, Vm  # noqa: E402
from tests.unit.worker.world import OneHost, World, new_world  # noqa: E402

URI = "test:///default"
POOL = "default-pool"
IMAGE_URL = "https://example.invalid/debian.img"


def _cleanup(conn: Any) -> None:
    for dom in conn.listAllDomains(0):
        if str(dom.name()).startswith("vm"):
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    for volume in conn.storagePoolLookupByName(POOL).listAllVolumes(0):
        volume.delete(0)


def _reboot(conn: Any) -> None:
    """Every guest goes down; libvirtd then starts the domains marked autostart."""
    for dom in conn.listAllDomains(0):
        if dom.isActive():
            dom.destroy()
    for dom in conn.listAllDomains(0):
        if dom.autostart():
            dom.create()


@pytest.fixture
def conn() -> Iterator[Any]:
    """Held for the test: the test driver keeps its state while a connection is open."""
    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    held = libvirt.open(URI)
    _cleanup(held)
    image = f"<volume><name>{image_volume_name(IMAGE_URL)}</name>"
    held.storagePoolLookupByName(POOL).createXML(
        image + f"<capacity unit='bytes'>{GIB}</capacity></volume>", 0
    )
    yield held
    _cleanup(held)
    held.close()


@pytest.fixture
async def libvirt_world(conn: Any) -> AsyncIterator[World]:
    world = await new_world()
    host = LibvirtVmHost(URI, world.clock, storage_pool=POOL)
    world.deps = attrs.evolve(world.deps, hosts=OneHost(host))
    world.handlers = build_handlers(world.deps)
    yield world
    await host.aclose()


def _running(conn: Any, vm: Vm) -> bool:
    return bool(conn.lookupByName(f"vm{vm.id}").isActive())


async def test_a_paid_vm_comes_back_after_its_hypervisor_reboots(
    libvirt_world: World, conn: Any
) -> None:
    world = libvirt_world
    vm = await world.paid_vm()
    assert _running(conn, vm)
    _reboot(conn)
    await world.vm_check()
    await world.run_jobs()
    assert _running(conn, vm)


async def test_an_expired_vm_stays_off_after_its_hypervisor_reboots(
    libvirt_world: World, conn: Any
) -> None:
    world = libvirt_world
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + timedelta(seconds=1))
    await world.lifecycle()
    assert not _running(conn, vm)
    _reboot(conn)
    assert not _running(conn, vm)
