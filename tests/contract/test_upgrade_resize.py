"""A paid upgrade always reaches the host: the booking marks the VM `resize_requested` with its
records, ProcessVmUpgrade clears the mark once the host has the size, and the VM check sends a
lost job again after the grace period; on memory, SQLite and MariaDB."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, cast

import attrs
import pytest

from adapters.mysql.uow import SqlUnitOfWorkFactory
from app.billing.completion import complete_payment
from app.billing.upgrades import create_upgrade_payment
from app.worker.vmcheck import RESIZE_GRACE, VmCheckReport, resend_lost_resizes
from domain.enums import VmHistoryActionType as H
from domain.model import GIB, SubscriptionPayment, Vm
from domain.upgrade import AS_RECORDED, UpgradeConfig
from ports.jobs import Job, ProcessVmUpgrade
from ports.storage import UnitOfWork, UnitOfWorkFactory
from ports.vmhost import VmResources
from tests.contract import lifecycle_world, storage_backends
from tests.contract.storage_backends import Database
from tests.contract.test_completion_history_atomic import Killed
from tests.http.test_statement_budgets import counting
from tests.unit.billing.world import ALICE
from tests.unit.worker.world import World

SECOND = timedelta(seconds=1)
# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database


# pytest fixture: the worker world over this module's backend
world = lifecycle_world.world


async def _upgrade(world: World, vm: Vm, cfg: UpgradeConfig) -> SubscriptionPayment:
    shop = world.shop
    return await create_upgrade_payment(
        shop.factory, shop.clock, shop.rails, shop.rates, user_id=ALICE, vm_id=vm.id, cfg=cfg
    )


async def _drop_queued(world: World, kind: type[Job] = ProcessVmUpgrade) -> list[Job]:
    """The queued jobs of `kind` are lost (taken, never run); other jobs stay queued."""
    dropped: list[Job] = []
    for delivery in await world.queue.receive(max_jobs=100, block_ms=0):
        await world.queue.ack(delivery)
        if isinstance(delivery.job, kind):
            dropped.append(delivery.job)
        else:
            await world.queue.send(delivery.job)
    return dropped


def _size(cpu: int, memory: int, disk: int = 64 * GIB) -> VmResources:
    return VmResources(cpu=cpu, memory=memory, disk_size=disk)


class _DiesAfter:
    """A unit of work whose `vms.request_resize` runs and then the process dies."""

    def __init__(self, inner: UnitOfWork) -> None:
        self._inner = inner

    async def __aenter__(self) -> _DiesAfter:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._inner.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        return _DyingVms(found) if name == "vms" else found


class _DyingVms:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def request_resize(self, vm_id: int, now: datetime) -> datetime:
        await self._inner.request_resize(vm_id, now)
        raise Killed("died after marking the resize")


def _dying_after_mark(factory: UnitOfWorkFactory) -> UnitOfWorkFactory:
    return lambda: cast(UnitOfWork, _DiesAfter(factory()))


async def test_the_booking_marks_the_vm_with_its_records_and_a_crash_leaves_neither(
    world: World,
) -> None:
    vm = await world.paid_vm()
    assert vm.resize_requested is None
    upgrade = await _upgrade(world, vm, UpgradeConfig(new_cpu=4))
    shop = world.shop

    with pytest.raises(Killed):
        await complete_payment(
            _dying_after_mark(shop.factory),
            world.clock,
            shop.rails,
            world.queue,
            payment_id=upgrade.id,
        )
    crashed = await shop.vm(vm.id)
    assert crashed.resize_requested is None and crashed.template_id == vm.template_id
    assert not (await shop.payment(upgrade.id)).is_paid
    assert await world.history(vm, H.CONFIGURATION_CHANGED) == []

    report = await world.complete(upgrade)
    assert report.completed
    booked = await shop.vm(vm.id)
    assert booked.resize_requested == world.now
    assert booked.template_id is None and booked.custom_template_id is not None
    assert [j.kind for j in report.jobs] == ["ProcessVmUpgrade"]


async def test_a_completed_job_resizes_the_host_and_clears_the_mark(world: World) -> None:
    vm = await world.paid_vm()
    assert world.host.sizes[vm.id] == _size(2, 2 * GIB)
    await world.complete(await _upgrade(world, vm, UpgradeConfig(new_cpu=4)))

    await world.run_jobs()

    assert world.host.sizes[vm.id] == _size(4, 2 * GIB)
    assert (await world.shop.vm(vm.id)).resize_requested is None
    assert world.host_state(vm.id) == "running"
    world.advance(RESIZE_GRACE + SECOND)
    assert (await world.vm_check()).resized == []
    assert world.queue.pending_count == 0 and await world.run_jobs() == 0
    assert world.host.calls.get("resize_vm") == 1


async def test_a_lost_job_is_sent_again_after_the_grace_period_and_the_host_gets_the_size(
    world: World,
) -> None:
    vm = await world.paid_vm()
    await world.complete(await _upgrade(world, vm, UpgradeConfig(new_cpu=4)))
    booked = await world.shop.vm(vm.id)
    assert await _drop_queued(world) == [
        ProcessVmUpgrade(vm_id=vm.id, config=UpgradeConfig(new_cpu=4))
    ]
    await world.run_jobs()  # the other follow-ups
    item_before = await _line_item_amount(world, vm)

    world.advance(RESIZE_GRACE - SECOND)  # a job may still be queued: not doubled
    assert (await world.vm_check()).resized == []
    assert await _drop_queued(world) == []
    assert (await world.shop.vm(vm.id)).resize_requested == booked.resize_requested

    world.advance(2 * SECOND)
    assert (await world.vm_check()).resized == [vm.id]
    world.advance(timedelta(seconds=30))  # the next check, before the job ran
    assert (await world.vm_check()).resized == []
    await world.run_jobs()

    assert world.host.sizes[vm.id] == _size(4, 2 * GIB)
    assert world.host.calls.get("resize_vm") == 1
    assert world.host_state(vm.id) == "running"
    after = await world.shop.vm(vm.id)
    assert after.resize_requested is None
    # the records step of the re-sent job changed nothing
    assert after.custom_template_id == booked.custom_template_id
    assert len(await world.history(vm, H.CONFIGURATION_CHANGED)) == 1
    assert await _line_item_amount(world, vm) == item_before
    assert len(world.notifier.titled(f"[VM{vm.id}] Upgrade Complete")) == 1
    world.advance(RESIZE_GRACE + SECOND)
    assert (await world.vm_check()).resized == []


async def test_a_late_job_and_its_re_send_resize_the_host_once(world: World) -> None:
    """The booking's job only late (a worker down past the grace): the VM check re-sends it,
    both run, and the second one finds the mark cleared and leaves the VM alone."""
    vm = await world.paid_vm()
    await world.complete(await _upgrade(world, vm, UpgradeConfig(new_cpu=4)))
    world.advance(RESIZE_GRACE + SECOND)
    assert (await world.vm_check()).resized == [vm.id]

    await world.run_jobs()  # the late original, then the re-send

    assert world.host.sizes[vm.id] == _size(4, 2 * GIB)
    assert world.host.calls.get("resize_vm") == 1
    assert (await world.shop.vm(vm.id)).resize_requested is None
    assert len(world.notifier.titled(f"[VM{vm.id}] Upgrade Complete")) == 1


async def test_an_upgrade_booked_while_the_job_resizes_is_not_lost(world: World) -> None:
    vm = await world.paid_vm()
    await world.complete(await _upgrade(world, vm, UpgradeConfig(new_cpu=4)))
    first = (await world.shop.vm(vm.id)).resize_requested
    assert first is not None
    world.host.hold("resize_vm")
    job = asyncio.create_task(world.run_jobs())
    await world.host.entered("resize_vm").wait()  # the first job resizes to 4 CPUs

    await world.complete(await _upgrade(world, vm, UpgradeConfig(new_memory=8 * GIB)))
    assert len(await _drop_queued(world)) == 1  # and its job is lost
    second = (await world.shop.vm(vm.id)).resize_requested
    assert second is not None and second > first
    world.host.let_go("resize_vm")
    await job

    assert world.host.sizes[vm.id] == _size(4, 2 * GIB)  # what the first job read
    assert (await world.shop.vm(vm.id)).resize_requested == second  # compare-and-clear
    world.advance(RESIZE_GRACE + 2 * SECOND)  # booked in the same second: marked a second on
    assert (await world.vm_check()).resized == [vm.id]
    await world.run_jobs()
    assert world.host.sizes[vm.id] == _size(4, 8 * GIB)
    assert (await world.shop.vm(vm.id)).resize_requested is None


async def test_a_deleted_vm_has_its_mark_cleared_without_a_resize(world: World) -> None:
    vm = await world.paid_vm()
    await world.complete(await _upgrade(world, vm, UpgradeConfig(new_cpu=4)))
    await _drop_queued(world)
    async with world.shop.factory() as uow:
        await uow.vms.delete(vm.id)
        await uow.commit()

    await world.queue.send(ProcessVmUpgrade(vm_id=vm.id, config=AS_RECORDED))
    await world.run_jobs()

    assert world.host.calls.get("resize_vm") is None
    assert (await world.shop.vm(vm.id)).resize_requested is None


async def test_a_vm_not_built_yet_is_built_at_the_new_size_and_its_mark_cleared(
    world: World,
) -> None:
    vm = await world.shop.order()
    await world.complete(await world.renew(vm))
    await _drop_queued(world, Job)  # the spawn is lost too
    await world.complete(await _upgrade(world, vm, UpgradeConfig(new_cpu=4)))

    await world.run_jobs()  # ProcessVmUpgrade: records only, nothing on a host to resize
    assert world.host.calls.get("resize_vm") is None
    assert (await world.shop.vm(vm.id)).resize_requested is None

    await world.vm_check()  # the spawn's safety net builds it at the size paid for
    await world.run_jobs()
    assert world.host.sizes[vm.id] == _size(4, 2 * GIB)
    assert world.host_state(vm.id) == "running"


async def _line_item_amount(world: World, vm: Vm) -> int:
    async with world.shop.factory() as uow:
        item = await uow.line_items.get(vm.subscription_line_item_id)
    assert item is not None
    return item.amount


async def test_a_stale_copy_of_the_vm_written_back_keeps_the_mark(world: World) -> None:
    vm = await world.paid_vm()  # read before the upgrade: no mark
    await world.complete(await _upgrade(world, vm, UpgradeConfig(new_cpu=4)))
    marked = (await world.shop.vm(vm.id)).resize_requested
    assert marked is not None
    async with world.shop.factory() as uow:
        await uow.vms.update(attrs.evolve(vm, ref_code="stale"))
        await uow.commit()
    assert (await world.shop.vm(vm.id)).resize_requested == marked


async def test_the_vm_check_finds_every_marked_vm_with_one_statement(
    world: World, database: Database
) -> None:
    vms = [await world.paid_vm() for _ in range(3)]
    async with world.shop.factory() as uow:
        for vm in vms:
            await uow.vms.request_resize(vm.id, world.now)
        await uow.commit()
    world.advance(RESIZE_GRACE + SECOND)
    report = VmCheckReport()
    if database.url is None:
        await resend_lost_resizes(world.deps, report)
    else:
        engine = cast(SqlUnitOfWorkFactory, world.shop.factory).engine
        with counting(engine) as counter:
            await resend_lost_resizes(world.deps, report)
        reads = [s for s in counter.statements if s.lstrip().upper().startswith("SELECT")]
        assert len(reads) == 1 and "resize_requested <" in reads[0]
        if database.kind == "sqlite":
            async with engine.connect() as conn:
                explain = "EXPLAIN QUERY PLAN " + reads[0]
                plan = await conn.exec_driver_sql(explain, ("2026-01-01 00:00:00",))
                assert "idx_vm_resize_requested" in " ".join(str(r) for r in plan)
    assert report.resized == [vm.id for vm in vms]
