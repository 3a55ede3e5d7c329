"""The admin API's VM delete on memory, SQLite and MariaDB: the DeleteVm job it queues runs the
worker's deletion path, which expires and cancels the VM's pending invoices (D24)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import attrs
import pytest

from adapters.memory.storage import MemoryUnitOfWorkFactory
from app.admin.vm_removal import delete_vm
from app.admin.vms import VmIsDeleted
from app.worker.jobs import build_handlers
from domain.enums import VmHistoryActionType
from ports.jobs import DeleteVm
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables, engine_on, sql_factory, world_over
from tests.contract.storage_backends import Database
from tests.unit.worker.world import World

database = storage_backends.database


@pytest.fixture
async def world(database: Database) -> AsyncIterator[World]:
    def wired(w: World) -> World:
        w.deps = attrs.evolve(w.deps, payment_canceller=w.shop.rails)
        w.handlers = build_handlers(w.deps)
        return w

    if database.url is None:
        yield wired(await world_over(MemoryUnitOfWorkFactory()))
        return
    async with engine_on(database) as engine:
        await empty_tables(engine, database.kind)
        yield wired(await world_over(sql_factory(engine)))


async def test_admin_delete_ends_pending_invoices_through_the_worker(world: World) -> None:
    vm = await world.paid_vm()
    invoice = await world.renew(vm)
    await world.run_jobs()
    await delete_vm(world.shop.factory, world.queue, vm_id=vm.id, admin_id=7, reason="abuse")
    assert not (await world.shop.vm(vm.id)).deleted  # the worker does it, not the API
    assert await world.run_jobs() >= 1
    assert (await world.shop.vm(vm.id)).deleted
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        assert await uow.payments.list_pending_for_subscription(sub.id, world.now) == []
        [entry] = [
            h
            for h in (await uow.vm_history.list_by_vm(vm.id, 50, 0)).items
            if h.metadata and h.metadata.get("admin_user_id") == 7
        ]
        assert entry.metadata == {"admin_action": True, "admin_user_id": 7, "reason": "abuse"}
    assert world.shop.node.cancelled == [invoice.id]
    with pytest.raises(VmIsDeleted, match="VM is already deleted"):
        await delete_vm(world.shop.factory, world.queue, vm_id=vm.id, admin_id=7, reason=None)


async def test_two_deletes_of_one_vm_at_once_delete_it_once(world: World) -> None:
    vm = await world.paid_vm()
    await world.run_jobs()
    for _ in range(2):
        await delete_vm(world.shop.factory, world.queue, vm_id=vm.id, admin_id=7, reason=None)
    deliveries = await world.queue.receive(10, 0)
    delete_jobs = [d.job for d in deliveries if isinstance(d.job, DeleteVm)]
    assert len(delete_jobs) == 2
    await asyncio.gather(*(world.handlers.run(job) for job in delete_jobs))
    async with world.shop.factory() as uow:
        history = (await uow.vm_history.list_by_vm(vm.id, 50, 0)).items
    assert [h.action_type for h in history].count(VmHistoryActionType.DELETED) == 1
