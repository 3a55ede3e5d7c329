"""The admin extend on memory, SQLite and MariaDB: a VM deleted while an extend waited for its
subscription's lock is refused, and its subscription stays as the deletion left it."""

from __future__ import annotations

import asyncio

import attrs
import pytest

from app.admin.vms import VmIsDeleted, extend_vm
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lock_waits import until
from tests.unit.billing.world import ALICE, Shop

database = storage_backends.database
shop = lifecycle_world.shop


async def test_an_extend_racing_a_deletion_does_not_revive_its_subscription(shop: Shop) -> None:
    """The deletion (as the worker's: the subscription's lock first) holds the lock while the
    extend starts. Read before the lock, the VM looked live to the extend, which then
    re-activated the cancelled subscription of a deleted VM and queued a spawn."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    sub = await shop.subscription(vm)
    holding, release = asyncio.Event(), asyncio.Event()

    async def deletion() -> None:
        async with shop.factory() as uow:
            locked = await uow.subscriptions.get_for_update(sub.id)
            assert locked is not None
            await uow.vms.delete(vm.id)
            await uow.subscriptions.update(attrs.evolve(locked, is_active=False))
            holding.set()
            await release.wait()
            await uow.commit()

    deleting = asyncio.create_task(deletion())
    await holding.wait()
    shop.queue.sent.clear()
    extend = asyncio.create_task(
        extend_vm(shop.factory, shop.clock, shop.queue, vm_id=vm.id, days=5, admin_id=ALICE)
    )
    await until("the extend waits for the deletion's lock", lambda waits: waits >= 1, shop.factory)
    release.set()
    await deleting

    with pytest.raises(VmIsDeleted, match="Cannot extend a deleted VM"):
        await extend
    after = await shop.subscription(vm)
    assert (after.is_active, after.expires) == (False, sub.expires)
    assert shop.queue.sent == []
