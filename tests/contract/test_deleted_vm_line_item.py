"""A deleted VM's line item is not deleted (r10): memory, SQLite and MariaDB refuse it alike."""

from __future__ import annotations

import pytest

from app.admin.deletes import StillInUse, delete_line_item
from app.admin.vm_removal import delete_vm
from tests.contract import lifecycle_world, storage_backends
from tests.unit.worker.world import World

# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database
# pytest fixture: the worker world over this module's backend, with a rail that cancels
world = lifecycle_world.world_with_rails("payment_canceller")


async def test_the_vm_line_item_of_a_deleted_vm_is_not_deleted(world: World) -> None:
    """(r10 proof) The in-use check looked for a VM that is not deleted: on SQL the delete
    then failed on the VM's foreign key (500); on memory it deleted the item a late payment
    restores the VM through (D24). Now refused (422), nothing changed."""
    vm = await world.paid_vm()
    await world.run_jobs()
    await delete_vm(
        world.shop.factory, world.queue, world.clock, vm_id=vm.id, admin_id=7, reason=None
    )
    await world.run_jobs()
    assert (await world.shop.vm(vm.id)).deleted
    item_id = vm.subscription_line_item_id
    with pytest.raises(StillInUse, match=f"it billed VM {vm.id}, which is deleted"):
        await delete_line_item(world.shop.factory, world.clock, item_id, admin_id=7)
    async with world.shop.factory() as uow:
        assert await uow.line_items.get(item_id) is not None
        assert await uow.vms.get_any_by_line_item(item_id) == await uow.vms.get(vm.id)
        assert await uow.vms.get_by_line_item(item_id) is None
