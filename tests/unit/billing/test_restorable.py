"""Which deleted VMs a payment may still restore, and the reason when it may not (issue 13, D25)."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest

from adapters.memory.storage import MemoryUnitOfWorkFactory
from app.billing.restorable import why_unplaceable, why_unrestorable
from domain.enums import DiskInterface, DiskType
from domain.model import CustomTemplate, Vm
from tests.http.demo_catalogue import Demo, seed_demo

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
        return await why_unrestorable(uow, vm, NOW)


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
        assert await why_unplaceable(uow, order, NOW) is None
        await uow.hosts.update(attrs.evolve(host, cpu=retired.cpu - 1))
        assert (
            await why_unplaceable(uow, order, NOW) == f"host {demo.host} has no room left for VM 7"
        )
        gone = attrs.evolve(order, template_id=999)
        assert await why_unplaceable(uow, gone, NOW) is None  # no size to judge
