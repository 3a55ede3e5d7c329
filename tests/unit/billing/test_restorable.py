"""Which deleted VMs a payment may still restore, and the reason when it may not (issue 13, D25)."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest

from adapters.memory.storage import MemoryUnitOfWorkFactory
from app.billing.restorable import Placing, placing
from domain.enums import DiskInterface, DiskType
from domain.model import CustomTemplate, Vm
from ports.storage import UnitOfWork
from tests.http.demo_catalogue import Demo, seed_demo
from tests.unit.billing.world import add_host

GIB = 1024**3


@pytest.fixture
async def seeded() -> tuple[MemoryUnitOfWorkFactory, Demo]:
    store = MemoryUnitOfWorkFactory()
    return store, await seed_demo(store, datetime(2026, 6, 1, tzinfo=UTC))


NOW = datetime(2026, 6, 2, tzinfo=UTC)


def _vm(
    host_id: int,
    template_id: int | None,
    custom_template_id: int | None = None,
    disk_id: int = 1,
) -> Vm:
    return Vm(
        id=7,
        host_id=host_id,
        user_id=1,
        image_id=1,
        template_id=template_id,
        custom_template_id=custom_template_id,
        ssh_key_id=1,
        disk_id=disk_id,
        subscription_line_item_id=1,
        deleted=True,
    )


async def _why(store: MemoryUnitOfWorkFactory, vm: Vm) -> str | None:
    async with store() as uow:
        return (await placing(uow, vm, NOW, deleted=True, region=None)).why


async def _late(uow: UnitOfWork, order: Vm) -> str | None:
    """Why a late-paid order cannot be set up where it is (no lock held: nothing moves)."""
    return (await placing(uow, order, NOW, deleted=False, region=None)).why


async def _custom(store: MemoryUnitOfWorkFactory, pricing_id: int) -> int:
    async with store() as uow:
        spec = await uow.custom_templates.add(
            CustomTemplate(
                id=0,
                cpu=2,
                memory=2 * GIB,
                disk_size=40 * GIB,
                disk_type=DiskType.SSD,
                disk_interface=DiskInterface.PCIE,
                pricing_id=pricing_id,
            )
        )
        await uow.commit()
    return spec.id


async def test_standard_templates(seeded: tuple[MemoryUnitOfWorkFactory, Demo]) -> None:
    store, demo = seeded
    assert await _why(store, _vm(demo.host, demo.tiny)) is None
    assert await _why(store, _vm(999, demo.tiny)) == "host 999 of VM 7 is gone"
    assert await _why(store, _vm(demo.host, 999)) == "template 999 of VM 7 is gone"
    assert (
        await _why(store, _vm(demo.host, demo.retired))
        == f"template {demo.retired} of VM 7 is disabled"
    )
    assert await _why(store, _vm(demo.host, None)) == "VM 7 has no template"


async def test_custom_templates(seeded: tuple[MemoryUnitOfWorkFactory, Demo]) -> None:
    store, demo = seeded
    live = await _custom(store, demo.custom)
    retired = await _custom(store, demo.old_custom)
    assert await _why(store, _vm(demo.host, None, live)) is None
    assert (
        await _why(store, _vm(demo.host, None, retired))
        == f"custom pricing {demo.old_custom} of VM 7 is disabled"
    )
    assert await _why(store, _vm(demo.host, None, 999)) == "custom template 999 of VM 7 is gone"


async def test_its_disk(seeded: tuple[MemoryUnitOfWorkFactory, Demo]) -> None:
    store, demo = seeded
    assert await _why(store, _vm(demo.host, demo.tiny, disk_id=999)) == "disk 999 of VM 7 is gone"
    async with store() as uow:
        [disk] = [d for d in await uow.host_disks.list_by_host(demo.host) if d.id == demo.ssd]
        await uow.host_disks.update(attrs.evolve(disk, enabled=False))
        await uow.commit()
    assert (
        await _why(store, _vm(demo.host, demo.tiny, disk_id=demo.ssd))
        == f"disk {demo.ssd} of VM 7 is disabled"
    )


async def test_room_on_its_host(seeded: tuple[MemoryUnitOfWorkFactory, Demo]) -> None:
    """Judged as an order is placed: its whole size beside what the host holds, to the unit."""
    store, demo = seeded
    async with store() as uow:
        tiny = await uow.templates.get(demo.tiny)
        host = await uow.hosts.get(demo.host)
        assert tiny is not None and host is not None
    vm = _vm(demo.host, demo.tiny, disk_id=demo.ssd)
    for cpu, why in (
        (tiny.cpu, None),
        (tiny.cpu - 1, f"host {demo.host} has no room left for VM 7"),
    ):
        async with store() as uow:
            await uow.hosts.update(attrs.evolve(host, cpu=cpu))
            await uow.commit()
        assert await _why(store, vm) == why


async def test_a_late_paid_order_is_judged_on_room_only(
    seeded: tuple[MemoryUnitOfWorkFactory, Demo],
) -> None:
    """Its offer disabled since does not stop it; its size still has to fit."""
    store, demo = seeded
    order = attrs.evolve(_vm(demo.host, demo.retired, disk_id=demo.ssd), deleted=False)
    async with store() as uow:
        retired = await uow.templates.get(demo.retired)
        host = await uow.hosts.get(demo.host)
        assert retired is not None and host is not None
        assert await _late(uow, order) is None
        await uow.hosts.update(attrs.evolve(host, cpu=retired.cpu - 1))
        assert await _late(uow, order) == f"host {demo.host} has no room left for VM 7"
        gone = attrs.evolve(order, template_id=999)
        assert await _late(uow, gone) is None  # no size to judge


async def _other_host(store: MemoryUnitOfWorkFactory, region: int) -> tuple[int, int]:
    """A second enabled host of the region, with one SSD: (host id, disk id)."""
    async with store() as uow:
        host = await add_host(uow, region_id=region, name="h2", ip="10.0.0.2")
        [disk] = await uow.host_disks.list_by_host(host.id)
        await uow.commit()
    return host.id, disk.id


async def _disable(store: MemoryUnitOfWorkFactory, host_id: int) -> None:
    async with store() as uow:
        host = await uow.hosts.get(host_id)
        assert host is not None
        await uow.hosts.update(attrs.evolve(host, enabled=False))
        await uow.commit()


async def test_placing_moves_a_vm_within_the_locked_region_only(
    seeded: tuple[MemoryUnitOfWorkFactory, Demo],
) -> None:
    store, demo = seeded
    other, disk = await _other_host(store, demo.region)
    await _disable(store, demo.host)
    standard = _vm(demo.host, demo.tiny, disk_id=demo.ssd)
    custom = _vm(demo.host, None, await _custom(store, demo.custom), disk_id=demo.ssd)
    async with store() as uow:
        for vm in (standard, custom):
            moved = await placing(uow, vm, NOW, deleted=True, region=demo.region)
            assert moved.why is None and moved.moved_to is not None
            assert (moved.moved_to.host.id, moved.moved_to.disk.id) == (other, disk)
            # without the region's lock (or another region's) nothing moves
            for region in (None, demo.closed_region):
                kept = await placing(uow, vm, NOW, deleted=True, region=region)
                assert kept == Placing(why=f"host {demo.host} of VM 7 is disabled")


async def test_placing_keeps_what_can_stay_and_a_late_order_on_its_disabled_host(
    seeded: tuple[MemoryUnitOfWorkFactory, Demo],
) -> None:
    """A VM its host takes again stays; a late order is judged on room only (a host disabled
    since keeps it); a deleted VM of a withdrawn offer is not placed anew anywhere."""
    store, demo = seeded
    await _other_host(store, demo.region)
    vm = _vm(demo.host, demo.tiny, disk_id=demo.ssd)
    async with store() as uow:
        assert await placing(uow, vm, NOW, deleted=True, region=demo.region) == Placing()
    await _disable(store, demo.host)
    order = attrs.evolve(vm, deleted=False)
    retired = _vm(demo.host, demo.retired, disk_id=demo.ssd)
    async with store() as uow:
        assert await placing(uow, order, NOW, deleted=False, region=demo.region) == Placing()
        withdrawn = await placing(uow, retired, NOW, deleted=True, region=demo.region)
        assert withdrawn == Placing(why=f"template {demo.retired} of VM 7 is disabled")
