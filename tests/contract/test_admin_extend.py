"""The admin extend on memory, SQLite and MariaDB: a VM deleted while an extend waited for its
subscription's lock is refused, and its subscription stays as the deletion left it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import attrs
import pytest

from app.admin.vms import VmIsDeleted, extend_vm
from app.billing.errors import OrderLapsed
from app.billing.reserved import reserved_usage
from domain.unpaid_room import NO_UNPAID_ROOM_LIMITS
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


async def test_a_lapsed_never_paid_order_is_not_extended_onto_a_full_host(shop: Shop) -> None:
    """Review r16: a never-paid order past its payment window let its host room go and
    another order took it; extending it put both on a host with room for one (4 vCPUs
    promised on 2), with no room or address check. Refused (422), nothing changed; an
    order still in its window keeps its room and is extended."""
    shop.unpaid_room = NO_UNPAID_ROOM_LIMITS
    async with shop.factory() as uow:
        host = await uow.hosts.get(1)
        assert host is not None
        await uow.hosts.update(attrs.evolve(host, cpu=2))  # room for one 2-vCPU VM
        await uow.commit()
    lapsed = await shop.order()
    shop.clock.advance(timedelta(hours=2))  # its window is over: its room is free again
    taker = await shop.order(user_id=2)
    before = await shop.subscription(lapsed)
    with pytest.raises(OrderLapsed, match="cannot be extended"):
        await extend_vm(shop.factory, shop.clock, shop.queue, vm_id=lapsed.id, days=30, admin_id=1)
    assert await shop.subscription(lapsed) == before
    async with shop.factory() as uow:
        used = (await reserved_usage(uow, {1}, shop.clock.now()))[1]
    assert used.cpu == 2

    done = await extend_vm(shop.factory, shop.clock, shop.queue, vm_id=taker.id, days=3, admin_id=1)
    assert done.new_expires == shop.clock.now() + timedelta(days=3)
