"""Pay → spawn → expire → stop once → renew → start → grace → delete, by time travel."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest

from app.worker import lifecycle
from app.worker.provisioning import history
from domain.enums import VmHistoryActionType as H
from domain.intervals import add_months
from domain.lifecycle import LifecycleAction
from domain.model import PLACEHOLDER_MAC
from ports.storage import StorageBusy
from tests.unit.worker.world import DAY, World, new_world

SECOND = timedelta(seconds=1)
RUN = timedelta(seconds=30)


async def test_payment_spawns_the_vm_running_with_an_address_and_notices(world: World) -> None:
    vm = await world.paid_vm()

    assert vm.mac_address != PLACEHOLDER_MAC
    assert world.host_state(vm.id) == "running"
    async with world.shop.factory() as uow:
        [ip] = await uow.ip_assignments.list_by_vm(vm.id)
    assert ip.ip == "10.0.0.2"  # .0 network, .1 gateway
    assert len(await world.history(vm, H.STARTED)) == 1
    [created] = world.notifier.to_user(vm.user_id)
    assert created.title == f"[VM{vm.id}] Created"
    assert "IP: 10.0.0.2" in created.message and "npub1" in created.message
    assert [n.title for n in world.notifier.to_admins()] == [f"[VM{vm.id}] Created"]
    state = await world.states.get(vm.id)
    assert state is not None and state.state.value == "running"


async def test_expired_vm_is_stopped_exactly_once_over_ten_runs(world: World) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)

    reports = await world.lifecycle(runs=10, step=RUN)

    assert world.host.calls.get("stop_vm") == 1
    assert world.host_state(vm.id) == "stopped"
    assert len(await world.history(vm, H.EXPIRED)) == 1
    expired = world.notifier.titled(f"[VM{vm.id}] Expired")
    assert len(expired) == 1
    assert "within 7 day(s)" in expired[0].message  # a 28-day-old subscription: 7 days (D16)
    assert "https://api.lnvps.test/api/v1/vm/" in expired[0].message
    done = [d.action for r in reports for d in r.done]
    assert done.count(LifecycleAction.STOP_ON_EXPIRY) == 1
    assert (await world.sub(vm)).is_active  # still in grace


async def test_renewal_after_the_stop_starts_the_vm_again_with_expiry_from_now(
    world: World,
) -> None:
    vm = await world.paid_vm()
    first = await world.sub(vm)
    assert first.expires is not None
    world.at(first.expires + SECOND)
    await world.lifecycle()
    assert world.host_state(vm.id) == "stopped"

    world.advance(2 * DAY)
    paid_at = world.now
    await world.complete(await world.renew(vm))
    await world.run_jobs()

    assert world.host_state(vm.id) == "running"
    renewed = await world.sub(vm)
    assert renewed.expires == add_months(paid_at, 1)  # from the payment, not the old expiry
    assert len(await world.history(vm, H.STARTED)) == 2
    assert world.host.calls.get("create_vm") == 1  # started, not rebuilt

    world.advance(RUN)
    await world.lifecycle(runs=5, step=RUN)
    await world.vm_check()
    assert world.host_state(vm.id) == "running"


async def test_a_vm_the_user_stopped_is_not_started_by_a_renewal(world: World) -> None:
    vm = await world.paid_vm()
    async with world.shop.factory() as uow:
        await uow.vm_history.add(history(vm.id, H.STOPPED, world.now, "stopped by user"))
        await uow.commit()
    await world.host.inner.stop_vm(vm)

    await world.complete(await world.renew(vm))
    await world.run_jobs()

    assert world.host_state(vm.id) == "stopped"


async def test_expiring_soon_notice_once_and_a_paid_vm_is_never_stopped(world: World) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    step = timedelta(hours=6)
    while world.now + step < sub.expires:
        await world.lifecycle()
        await world.vm_check()
        world.advance(step)

    assert "stop_vm" not in world.host.calls
    assert world.host_state(vm.id) == "running"
    assert not await world.history(vm, H.EXPIRED)
    assert len(world.notifier.titled(f"[VM{vm.id}] Expiring Soon")) == 1


async def test_stop_that_fails_on_the_host_is_retried_on_a_later_run(world: World) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    world.host.broken.add("stop_vm")

    [report] = await world.lifecycle(step=RUN)
    assert [d.action for d in report.failed] == [LifecycleAction.STOP_ON_EXPIRY]
    assert world.host_state(vm.id) == "running"
    assert not await world.history(vm, H.EXPIRED)
    assert not world.notifier.titled(f"[VM{vm.id}] Expired")

    world.host.broken.clear()
    await world.lifecycle(runs=3, step=RUN)
    assert world.host_state(vm.id) == "stopped"
    assert len(await world.history(vm, H.EXPIRED)) == 1
    assert len(world.notifier.titled(f"[VM{vm.id}] Expired")) == 1


async def test_two_workers_over_the_same_due_subscriptions_act_once_each(world: World) -> None:
    vms = [await world.paid_vm() for _ in range(3)]
    subs = [await world.sub(vm) for vm in vms]
    latest = max(s.expires for s in subs if s.expires is not None)
    world.at(latest + SECOND)

    for _ in range(3):
        await asyncio.gather(*(world.lifecycle() for _ in range(2)))
        world.advance(RUN)

    assert world.host.calls.get("stop_vm") == 3
    for vm in vms:
        assert len(await world.history(vm, H.EXPIRED)) == 1
        assert len(world.notifier.titled(f"[VM{vm.id}] Expired")) == 1

    world.advance(8 * DAY)  # past the 7-day grace of a 28-day-old subscription
    for _ in range(3):
        await asyncio.gather(*(world.lifecycle() for _ in range(2)))
        world.advance(RUN)
    assert world.host.calls.get("delete_vm") == 3
    for vm in vms:
        assert len(await world.history(vm, H.DELETED)) == 1
        assert len(world.notifier.titled(f"[VM{vm.id}] Deleted")) == 1


async def test_grace_grows_with_age_one_day_old_gets_one_day() -> None:
    world = await new_world(delete_after_days=3)
    vm = await world.paid_vm()
    sub = await world.set_paid_until(vm, (await world.sub(vm)).created + DAY)
    assert sub.expires is not None

    world.at(sub.expires + DAY - SECOND)
    await world.lifecycle()
    assert not (await world.shop.vm(vm.id)).deleted
    assert world.host_state(vm.id) == "stopped"

    world.at(sub.expires + DAY + SECOND)
    await world.lifecycle(runs=10, step=RUN)
    await _assert_deleted(world, vm.id)


async def test_grace_of_a_200_day_old_subscription_is_delete_after() -> None:
    world = await new_world(delete_after_days=3)
    vm = await world.paid_vm()
    sub = await world.set_paid_until(vm, (await world.sub(vm)).created + 200 * DAY)
    assert sub.expires is not None

    world.at(sub.expires + 3 * DAY - SECOND)
    await world.lifecycle()
    assert not (await world.shop.vm(vm.id)).deleted
    [n6] = world.notifier.titled(f"[VM{vm.id}] Expired")
    assert "within 3 day(s)" in n6.message

    world.at(sub.expires + 3 * DAY + SECOND)
    await world.lifecycle(runs=10, step=RUN)
    await _assert_deleted(world, vm.id)


async def _assert_deleted(world: World, vm_id: int) -> None:
    vm = await world.shop.vm(vm_id)
    assert vm.deleted
    assert world.host_state(vm_id) is None
    sub = await world.sub(vm)
    assert not sub.is_active
    async with world.shop.factory() as uow:
        assert await uow.ip_assignments.list_by_vm(vm_id) == []
    assert len(await world.history(vm, H.DELETED)) == 1
    assert len(world.notifier.titled(f"[VM{vm_id}] Deleted")) == 1
    assert world.notifier.titled(f"[VM{vm_id}] Deleted")[0].user_id is None  # admins (N8)
    assert len(world.notifier.titled(f"[VM{vm_id}] Cancelled")) == 1  # N4 to the user
    assert world.host.calls.get("delete_vm") == 1


async def test_delete_after_zero_deletes_on_the_first_run_after_grace_tier() -> None:
    world = await new_world(delete_after_days=0)
    vm = await world.paid_vm()
    sub = await world.set_paid_until(vm, (await world.sub(vm)).created + 200 * DAY)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    await world.lifecycle()
    await _assert_deleted(world, vm.id)
    assert not await world.history(vm, H.EXPIRED)  # §13 item 23: straight to deletion


async def test_payment_after_grace_deletion_brings_the_vm_back_fresh(world: World) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + 7 * DAY - timedelta(minutes=5))
    late = await world.renew(vm)  # invoice asked for in grace, paid after the deletion
    world.at(sub.expires + 7 * DAY + SECOND)
    await world.lifecycle()
    assert (await world.shop.vm(vm.id)).deleted
    old_mac = (await world.shop.vm(vm.id)).mac_address

    await world.complete(late)
    await world.run_jobs()

    again = await world.shop.vm(vm.id)
    assert not again.deleted and (await world.sub(vm)).is_active
    assert world.host_state(vm.id) == "running"
    assert again.mac_address != old_mac
    async with world.shop.factory() as uow:
        assert len(await uow.ip_assignments.list_by_vm(vm.id)) == 1
    assert world.host.calls.get("create_vm") == 2


async def test_an_action_refused_by_a_busy_database_is_a_warning_and_retried_next_run(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A lock timeout or deadlock (StorageBusy) is no bug: no error or traceback is logged,
    and the action, rolled back, is done by the next run."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    real_run_action = lifecycle.run_action
    busy_once = [StorageBusy()]

    async def busy_then_real(*args: Any) -> bool:
        if busy_once:
            raise busy_once.pop()
        return await real_run_action(*args)

    monkeypatch.setattr(lifecycle, "run_action", busy_then_real)
    with caplog.at_level(logging.WARNING, logger="lnvps"):
        [report] = await world.lifecycle(step=RUN)
    assert [d.action for d in report.failed] == [LifecycleAction.STOP_ON_EXPIRY]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert any("database busy" in r.getMessage() for r in caplog.records)
    assert world.host_state(vm.id) == "running"

    await world.lifecycle(step=RUN)
    assert world.host_state(vm.id) == "stopped"
    assert len(await world.history(vm, H.EXPIRED)) == 1
