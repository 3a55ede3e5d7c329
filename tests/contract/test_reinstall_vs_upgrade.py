"""An upgrade paid while the owner's re-install runs on the host is kept, and the VM is then
resized to it (review r5), on memory, SQLite and MariaDB.

The re-install reads the VM, calls the host (slow: a new disk from the image) and then
records the new image. The upgrade's booking does not wait for the re-install (it takes the
subscription's lock, not the VM's lease), so it changes the VM's template columns meanwhile;
the re-install's record writes the image alone, never its copy of the whole row.
"""

from __future__ import annotations

import asyncio

import attrs

from app import vm_actions
from app.billing.upgrades import create_upgrade_payment
from app.services import Services
from domain.enums import VmHistoryActionType as H
from domain.model import GIB, User, Vm
from domain.upgrade import UpgradeConfig
from ports.jobs import ProcessVmUpgrade
from ports.vmhost import VmResources
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import ALICE, IMAGE
from tests.unit.worker.world import World

#: a generous bound so a regression fails instead of hanging; no test asserts a duration
GUARD_S = 30
# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database
# pytest fixture: the worker world over this module's backend
world = lifecycle_world.world


def _services(world: World) -> Services:
    shop = world.shop
    return Services(
        uow_factory=shop.factory,
        clock=shop.clock,
        rails=shop.rails,
        rates=shop.rates,
        queue=world.queue,
        hosts=world.deps.hosts,
    )


async def _owner_and_new_image(world: World, vm: Vm) -> tuple[User, int]:
    async with world.shop.factory() as uow:
        user = await uow.users.get(vm.user_id)
        current = await uow.images.get(IMAGE)
        assert user is not None and current is not None
        image = await uow.images.add(attrs.evolve(current, id=0, version="13"))
        await uow.commit()
    return user, image.id


async def test_an_upgrade_paid_during_a_reinstall_is_kept_and_resized_to(world: World) -> None:
    vm = await world.paid_vm()
    user, image_id = await _owner_and_new_image(world, vm)
    shop = world.shop
    payment = await create_upgrade_payment(
        shop.factory, shop.clock, shop.rails, shop.rates,
        user_id=ALICE, vm_id=vm.id, cfg=UpgradeConfig(new_memory=4 * GIB),
    )  # fmt: skip
    world.host.hold("reinstall_vm")  # a new disk from the image takes minutes
    reinstall = asyncio.create_task(
        vm_actions.run_action(_services(world), user, vm.id, "re-install", image_id)
    )
    await asyncio.wait_for(world.host.entered("reinstall_vm").wait(), GUARD_S)

    report = await world.complete(payment)  # booked while the host re-installs
    assert any(isinstance(j, ProcessVmUpgrade) for j in report.jobs)
    booked = await shop.vm(vm.id)
    assert booked.template_id is None and booked.custom_template_id is not None

    world.host.let_go("reinstall_vm")
    await asyncio.wait_for(reinstall, GUARD_S)
    after = await shop.vm(vm.id)
    assert after == attrs.evolve(booked, image_id=image_id), "the re-install undid the upgrade"
    [entry] = await world.history(vm, H.REINSTALLED)
    assert (entry.previous_state, entry.new_state) == (
        {"image_id": IMAGE},
        {"image_id": image_id},
    )

    await world.run_jobs()  # the resize waited for the re-install's lease
    async with shop.factory() as uow:
        custom = await uow.custom_templates.get(booked.custom_template_id)
    assert custom is not None and custom.memory == 4 * GIB
    assert world.host.sizes[vm.id] == VmResources(
        cpu=custom.cpu, memory=4 * GIB, disk_size=custom.disk_size
    )
