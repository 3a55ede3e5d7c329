"""The narrow writes of the owner's VM edits change their one column and nothing else, on
memory, SQLite and MariaDB (review r5): what another transaction committed to the row's other
columns since the caller read it (a renewal's `expires`, an upgrade's template, a deletion)
is kept."""

from __future__ import annotations

import attrs

from domain.model import IpAssignment
from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import World, at, stored_world

# pytest fixtures: every test here runs on memory, SQLite and MariaDB
database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory


async def test_auto_renewal_is_written_alone(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:  # a renewal committed after the toggle read the row
        await uow.subscriptions.update(attrs.evolve(w.subscription, expires=at(20)))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.subscriptions.set_auto_renewal(w.subscription.id, True)
        assert not await uow.subscriptions.set_auto_renewal(w.subscription.id + 99, True)
        await uow.commit()
    async with uow_factory() as uow:
        after = await uow.subscriptions.get(w.subscription.id)
    assert after == attrs.evolve(w.subscription, expires=at(20), auto_renewal_enabled=True)


async def test_ssh_key_and_image_are_written_alone(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        other = await uow.ssh_keys.add(attrs.evolve(w.ssh_key, id=0, name="second"))
        image = await uow.images.add(attrs.evolve(w.image, id=0, version="13"))
        # an upgrade committed after the edit read the VM: its template columns must stay
        await uow.vms.update(attrs.evolve(w.vm, template_id=None, mac_address="bc:24:11:0:0:1"))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.vms.set_ssh_key(w.vm.id, other.id)
        assert await uow.vms.set_ssh_key(w.vm.id, other.id)  # the same value: still found
        await uow.vms.set_image(w.vm.id, image.id)
        await uow.commit()
    async with uow_factory() as uow:
        after = await uow.vms.get(w.vm.id)
    expected = attrs.evolve(
        w.vm,
        template_id=None,
        mac_address="bc:24:11:0:0:1",
        ssh_key_id=other.id,
        image_id=image.id,
    )
    assert after == expected


async def test_the_key_of_a_deleted_vm_is_not_written(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        other = await uow.ssh_keys.add(attrs.evolve(w.ssh_key, id=0, name="second"))
        await uow.vms.delete(w.vm.id)
        await uow.commit()
    async with uow_factory() as uow:
        assert not await uow.vms.set_ssh_key(w.vm.id, other.id)
        assert not await uow.vms.set_ssh_key(w.vm.id + 99, other.id)
        await uow.commit()
    async with uow_factory() as uow:
        after = await uow.vms.get(w.vm.id)
    assert after is not None and after.deleted and after.ssh_key_id == w.ssh_key.id


async def _addresses(uow_factory: UnitOfWorkFactory, w: World) -> list[IpAssignment]:
    async with uow_factory() as uow:
        added = [
            await uow.ip_assignments.add(
                IpAssignment(
                    id=0,
                    vm_id=w.vm.id,
                    ip_range_id=w.ip_range.id,
                    ip=f"10.9.0.{n}",
                    dns_reverse="old.example",
                    dns_forward="f.example",
                )
            )
            for n in (5, 6)
        ]
        await uow.commit()
    return added


async def test_reverse_dns_is_written_on_live_addresses_only(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    live, released = await _addresses(uow_factory, w)
    async with uow_factory() as uow:  # the VM's deletion released one address meanwhile
        await uow.ip_assignments.delete(released.id)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.ip_assignments.set_dns_reverse(w.vm.id, "vm.example") == 1
        await uow.commit()
    async with uow_factory() as uow:
        got = {a.id: await uow.ip_assignments.get(a.id) for a in (live, released)}
    assert got[live.id] == attrs.evolve(live, dns_reverse="vm.example")
    assert got[released.id] == attrs.evolve(released, deleted=True), "address brought back"
    async with uow_factory() as uow:
        assert await uow.ip_assignments.set_dns_reverse(w.vm.id, None) == 1
        assert await uow.ip_assignments.set_dns_reverse(w.vm.id + 99, None) == 0
        await uow.commit()
    async with uow_factory() as uow:
        cleared = await uow.ip_assignments.get(live.id)
    assert cleared == attrs.evolve(live, dns_reverse=None)


async def test_a_stale_address_copy_written_back_stays_released(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    live, _ = await _addresses(uow_factory, w)
    async with uow_factory() as uow:
        await uow.ip_assignments.delete(live.id)
        await uow.commit()
    async with uow_factory() as uow:  # a copy read before the deletion, written back
        await uow.ip_assignments.update(attrs.evolve(live, dns_reverse="late.example"))
        await uow.commit()
    async with uow_factory() as uow:
        after = await uow.ip_assignments.get(live.id)
    assert after == attrs.evolve(live, dns_reverse="late.example", deleted=True)
