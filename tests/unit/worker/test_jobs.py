"""Job handlers: auto-renewal hook, upgrade, admin delete, queued notices, spawn refusals."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

import attrs
import pytest

from adapters.notify.memory import RecordingNotifier
from app.billing.upgrades import apply_upgrade, create_upgrade_payment
from app.worker import jobs
from app.worker.context import AutoRenewal, RenewalOutcome
from app.worker.dispatch import BadJob
from app.worker.jobs import QueuedNotifier, build_handlers
from app.worker.loop import drain
from domain.enums import VmHistoryActionType as H
from domain.model import GIB, IpRange, Subscription, Vm
from domain.upgrade import UpgradeConfig
from ports.jobs import (
    CheckSubscriptions,
    CheckVms,
    DeleteVm,
    InvalidJob,
    ProcessVmUpgrade,
    SendNotification,
    SpawnVm,
    StartVm,
    StopVm,
)
from ports.storage import StorageBusy
from tests.unit.billing.world import ALICE
from tests.unit.worker.world import World

SECOND = timedelta(seconds=1)


class FakeRenewer:
    def __init__(self, error: str | None = None) -> None:
        self.error = error
        self.attempts: list[int] = []

    async def can_attempt(self, subscription: Subscription) -> bool:
        return True

    async def attempt(self, subscription: Subscription, period: datetime) -> AutoRenewal:
        self.attempts.append(subscription.id)
        if self.error is not None:
            raise RuntimeError(self.error)
        return AutoRenewal(RenewalOutcome.PAID)


async def _opt_in(world: World, sub: Subscription) -> None:
    async with world.shop.factory() as uow:
        await uow.subscriptions.update(attrs.evolve(sub, auto_renewal_enabled=True))
        await uow.commit()


@pytest.mark.parametrize("error", [None, "wallet has no funds"])
async def test_auto_renewal_is_attempted_once_per_period(world: World, error: str | None) -> None:
    renewer = FakeRenewer(error)
    world.deps = attrs.evolve(world.deps, auto_renewer=renewer)
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    await _opt_in(world, sub)
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=12))

    await world.lifecycle(runs=10, step=timedelta(seconds=30))

    assert renewer.attempts == [sub.id]
    if error is None:
        [n] = world.notifier.titled(f"[VM{vm.id}] Auto-Renewed")
        assert world.notifier.titled(f"[VM{vm.id}] Expiring Soon") == []
    else:
        [n] = world.notifier.titled(f"[VM{vm.id}] Expiring Soon")
        assert error in n.message


async def test_upgrade_job_resizes_and_restarts_the_vm_and_tells_the_user(world: World) -> None:
    vm = await world.paid_vm()
    config = UpgradeConfig(new_cpu=4)
    await world.queue.send(ProcessVmUpgrade(vm_id=vm.id, config=config))

    await world.run_jobs()

    assert world.host.calls.get("resize_vm") == 1
    assert world.host_state(vm.id) == "running"
    after = await world.shop.vm(vm.id)
    assert after.template_id is None and after.custom_template_id is not None
    [n9] = world.notifier.titled(f"[VM{vm.id}] Upgrade Complete")
    assert "CPU: 4 vCPU" in n9.message and f"RAM: {2 * GIB // GIB} GB" in n9.message
    assert len(await world.history(vm, H.CONFIGURATION_CHANGED)) == 1

    await world.queue.send(ProcessVmUpgrade(vm_id=vm.id, config=config))
    await world.run_jobs()  # redelivered: records unchanged
    assert len(await world.history(vm, H.CONFIGURATION_CHANGED)) == 1


async def test_an_upgrade_job_refused_by_a_busy_database_is_retried_not_reported(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """StorageBusy is not a DomainError: the job does not take a lock timeout for an upgrade
    that cannot be applied (admins told, job dropped); it fails and runs again."""
    vm = await world.paid_vm()
    busy_once = [StorageBusy()]

    async def busy_then_real(*args: Any, **kwargs: Any) -> None:
        if busy_once:
            raise busy_once.pop()
        await apply_upgrade(*args, **kwargs)

    monkeypatch.setattr(jobs, "apply_upgrade", busy_then_real)
    await world.queue.send(ProcessVmUpgrade(vm_id=vm.id, config=UpgradeConfig(new_cpu=4)))

    await world.run_jobs()

    assert not busy_once
    assert world.notifier.titled(f"VM {vm.id} Upgrade Failed") == []
    assert world.host.calls.get("resize_vm") == 1
    assert len(world.notifier.titled(f"[VM{vm.id}] Upgrade Complete")) == 1


async def _book_upgrade(world: World, vm: Vm, cfg: UpgradeConfig) -> None:
    """Pay an upgrade: its booking writes the records and queues its ProcessVmUpgrade."""
    shop = world.shop
    payment = await create_upgrade_payment(
        shop.factory, shop.clock, shop.rails, shop.rates, user_id=ALICE, vm_id=vm.id, cfg=cfg
    )
    assert (await world.complete(payment)).completed


async def _take_upgrade_jobs(world: World) -> list[ProcessVmUpgrade]:
    """Take the queued upgrade jobs out of the queue; other jobs stay queued."""
    taken: list[ProcessVmUpgrade] = []
    for delivery in await world.queue.receive(max_jobs=100, block_ms=0):
        await world.queue.ack(delivery)
        if isinstance(delivery.job, ProcessVmUpgrade):
            taken.append(delivery.job)
        else:
            await world.queue.send(delivery.job)
    return taken


SMALLER, BIGGER = UpgradeConfig(new_memory=4 * GIB), UpgradeConfig(new_memory=8 * GIB)


@pytest.mark.parametrize("newer_first", [False, True])
async def test_an_upgrade_job_overtaken_by_a_later_upgrade_does_nothing(
    world: World, newer_first: bool
) -> None:
    """Two upgrades paid in a row both write the records at booking; the older job then
    finds the bigger size, is refused as a downgrade and must not page the admins."""
    vm = await world.paid_vm()
    await _book_upgrade(world, vm, SMALLER)
    await _book_upgrade(world, vm, BIGGER)
    jobs = await _take_upgrade_jobs(world)
    assert [j.config for j in jobs] == [SMALLER, BIGGER]
    for job in reversed(jobs) if newer_first else jobs:
        await world.queue.send(job)

    await world.run_jobs()

    assert world.host.sizes[vm.id].memory == 8 * GIB
    assert world.host.calls.get("resize_vm") == 1 and world.host.calls.get("stop_vm") == 1
    assert world.host_state(vm.id) == "running"
    assert (await world.shop.vm(vm.id)).resize_requested is None
    assert world.notifier.titled(f"VM {vm.id} Upgrade Failed") == []
    assert len(world.notifier.titled(f"[VM{vm.id}] Upgrade Complete")) == 1

    await world.queue.send(jobs[0])  # the older job once more (a retry): still nothing
    await world.run_jobs()
    assert world.host.calls.get("resize_vm") == 1 and world.host.calls.get("stop_vm") == 1
    assert world.notifier.titled(f"VM {vm.id} Upgrade Failed") == []
    assert len(world.notifier.titled(f"[VM{vm.id}] Upgrade Complete")) == 1
    after = await world.shop.vm(vm.id)
    async with world.shop.factory() as uow:
        assert after.custom_template_id is not None
        recorded = await uow.custom_templates.get(after.custom_template_id)
    assert recorded is not None and recorded.memory == 8 * GIB
    assert len(await world.history(vm, H.CONFIGURATION_CHANGED)) == 2


@pytest.mark.parametrize(
    ("upgraded", "config"),
    [
        (True, UpgradeConfig(new_cpu=8, new_memory=4 * GIB)),  # 8 CPUs were never booked
        (False, UpgradeConfig(new_cpu=1)),  # a standard VM: no upgrade ever overtook it
    ],
)
async def test_an_upgrade_job_that_cannot_be_applied_still_tells_the_admins(
    world: World, upgraded: bool, config: UpgradeConfig
) -> None:
    vm = await world.paid_vm()
    if upgraded:
        await _book_upgrade(world, vm, BIGGER)
        await world.run_jobs()
    resized = world.host.calls.get("resize_vm")
    await world.queue.send(ProcessVmUpgrade(vm_id=vm.id, config=config))

    await world.run_jobs()

    [notice] = world.notifier.titled(f"VM {vm.id} Upgrade Failed")
    assert "Cannot downgrade" in notice.message and notice.user_id is None
    assert world.host.calls.get("resize_vm") == resized
    assert world.host_state(vm.id) == "running"


async def test_admin_delete_job(world: World) -> None:
    vm = await world.paid_vm()
    job = DeleteVm(vm_id=vm.id, reason="abuse", admin_user_id=2)
    await world.queue.send(job)
    await world.queue.send(job)

    await world.run_jobs()

    assert (await world.shop.vm(vm.id)).deleted
    assert world.host_state(vm.id) is None
    [entry] = await world.history(vm, H.DELETED)
    assert entry.metadata == {"admin_action": True, "admin_user_id": 2, "reason": "abuse"}
    assert entry.description == f"VM {vm.id} was deleted by an administrator"
    assert entry.timestamp == world.now
    assert len(world.notifier.titled(f"[VM{vm.id}] Deleted by Admin")) == 2  # user + admins


async def test_queued_notices_are_delivered_by_send_notification_jobs(world: World) -> None:
    delivered = RecordingNotifier()
    world.deps = attrs.evolve(world.deps, notifier=QueuedNotifier(world.queue))
    world.handlers = build_handlers(world.deps, delivery=delivered)

    vm = await world.paid_vm()

    assert world.notifier.sent == []
    assert [n.title for n in delivered.sent] == [f"[VM{vm.id}] Created"] * 2
    assert delivered.to_user(vm.user_id)[0].title == f"[VM{vm.id}] Created"


async def test_a_queued_notifier_cannot_deliver_its_own_jobs(world: World) -> None:
    queued = attrs.evolve(world.deps, notifier=QueuedNotifier(world.queue))
    with pytest.raises(ValueError, match="delivering notifier"):
        build_handlers(queued)


async def test_failed_notice_delivery_is_retried_by_the_queue(world: World) -> None:
    await world.queue.send(SendNotification(user_id=1, title="t", message="m"))
    world.notifier.failures = 1

    await world.run_jobs()

    assert [(s.user_id, s.title) for s in world.notifier.sent] == [(1, "t")]


async def test_read_only_mode_refuses_to_spawn_and_the_job_waits(world: World) -> None:
    world.deps = attrs.evolve(world.deps, read_only=True)
    world.handlers = build_handlers(world.deps)
    vm = await world.shop.order()
    await world.complete(await world.renew(vm))

    await drain(world.queue, world.handlers, max_jobs=3)
    assert not (await world.shop.vm(vm.id)).is_provisioned
    assert "create_vm" not in world.host.calls

    world.handlers = build_handlers(attrs.evolve(world.deps, read_only=False))
    await world.run_jobs()
    assert world.host_state(vm.id) == "running"


async def test_duplicate_spawn_jobs_build_the_vm_once(world: World) -> None:
    vm = await world.paid_vm()
    await world.queue.send(SpawnVm(vm_id=vm.id))
    await world.queue.send(SpawnVm(vm_id=vm.id))
    await world.run_jobs()
    assert world.host.calls.get("create_vm") == 1


async def test_no_free_ipv4_address_fails_the_spawn_and_builds_nothing(world: World) -> None:
    async with world.shop.factory() as uow:
        await uow.ip_ranges.add(
            IpRange(id=0, cidr="2001:db8::/64", enabled=True, region_id=1, gateway="2001:db8::1")
        )
        await uow.commit()
    first = await world.paid_vm()
    async with world.shop.factory() as uow:
        ips = sorted(a.ip for a in await uow.ip_assignments.list_by_vm(first.id))
    assert ips == ["10.0.0.2", "2001:db8::2"]

    second = await world.shop.order()
    await world.complete(await world.renew(second))
    # the pool shrinks between the payment and the build (orders and payments count it)
    async with world.shop.factory() as uow:
        range_ = await uow.ip_ranges.get(1)
        assert range_ is not None
        await uow.ip_ranges.update(attrs.evolve(range_, cidr="10.0.0.0/30"))  # .1 gw, .2 only
        await uow.commit()
    await drain(world.queue, world.handlers, max_jobs=2)

    assert not (await world.shop.vm(second.id)).is_provisioned
    assert world.host.calls.get("create_vm") == 1


def test_malformed_jobs_cannot_be_made() -> None:
    with pytest.raises(InvalidJob, match="vm_id"):
        SpawnVm(vm_id=cast(Any, "seven"))
    with pytest.raises(InvalidJob, match="config"):
        ProcessVmUpgrade(vm_id=1, config=cast(Any, "not json"))


async def test_a_job_its_handler_calls_bad_is_dropped_not_retried_forever(world: World) -> None:
    async def refuse(job: SpawnVm) -> None:
        raise BadJob(f"VM {job.vm_id} cannot be built from this job")

    world.handlers.on(SpawnVm, refuse)
    await world.queue.send(SpawnVm(vm_id=1))

    assert await drain(world.queue, world.handlers, max_jobs=10) == 1
    assert world.queue.pending_count == 0


async def test_upgrade_of_an_expired_vm_leaves_it_stopped(world: World) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    await world.lifecycle()
    config = UpgradeConfig(new_cpu=4)
    await world.queue.send(ProcessVmUpgrade(vm_id=vm.id, config=config))

    await world.run_jobs()

    assert world.host.calls.get("resize_vm") == 1
    assert world.host_state(vm.id) == "stopped"


async def test_piled_up_periodic_checks_run_once_per_gap(world: World) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    for _ in range(5):
        await world.queue.send(CheckVms())
    await world.run_jobs()
    assert world.host.calls.get("get_all_vm_states") == 1

    await world.queue.send(CheckSubscriptions())
    await world.run_jobs()
    world.advance(timedelta(seconds=11))
    await world.queue.send(CheckVms())
    await world.run_jobs()
    assert world.host.calls.get("get_all_vm_states") == 2
    assert world.host_state(vm.id) == "stopped"


async def test_spawn_job_for_an_unpaid_order_builds_nothing(world: World) -> None:
    vm = await world.shop.order()
    await world.queue.send(SpawnVm(vm_id=vm.id))
    await world.run_jobs()
    assert "create_vm" not in world.host.calls
    assert world.queue.pending_count == 0


async def test_admin_stop_and_start_jobs(world: World) -> None:
    vm = await world.paid_vm()
    await world.queue.send(StopVm(vm_id=vm.id, admin_user_id=2))
    await world.run_jobs()
    assert world.host_state(vm.id) == "stopped"
    [entry] = await world.history(vm, H.STOPPED)
    assert entry.metadata == {"admin_action": True, "admin_user_id": 2}
    assert len(world.notifier.titled(f"[VM{vm.id}] Stopped by Admin")) == 2

    await world.complete(await world.renew(vm))
    await world.run_jobs()
    assert world.host_state(vm.id) == "stopped"  # an admin's stop is not undone by renewal

    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    await world.queue.send(StartVm(vm_id=vm.id))
    await world.run_jobs()  # refused (expired) and dropped: StartVm is skippable
    assert world.host_state(vm.id) == "stopped"
    assert world.queue.pending_count == 0
