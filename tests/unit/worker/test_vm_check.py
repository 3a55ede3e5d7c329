"""check_vms: never-paid cleanup after one hour (D17, §13 item 7) and host state sync (§9.5)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import attrs

from adapters.vmhost.dummy import DummyVmHost
from app.worker.provisioning import history
from app.worker.vmcheck import check_vms
from domain.enums import VmHistoryActionType as H
from domain.model import Host
from ports.vmhost import VmHost
from tests.unit.billing.world import add_host
from tests.unit.worker.world import DAY, CountingHost, World

SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)


async def test_unpaid_order_is_kept_at_59_minutes_and_deleted_after_an_hour(world: World) -> None:
    vm = await world.shop.order()
    ordered = world.now

    world.at(ordered + timedelta(minutes=59))
    assert (await world.vm_check()).deleted == []
    assert not (await world.shop.vm(vm.id)).deleted

    world.at(ordered + HOUR + SECOND)
    assert (await world.vm_check()).deleted == [vm.id]
    assert (await world.shop.vm(vm.id)).deleted
    assert "delete_vm" not in world.host.calls  # never built: nothing on the host
    assert world.notifier.sent == []  # no notice, no history (reference)
    assert await world.history(vm, H.DELETED) == []


async def test_a_pending_payment_keeps_the_unpaid_order_until_it_lapses(world: World) -> None:
    vm = await world.shop.order()
    ordered = world.now
    world.at(ordered + timedelta(minutes=55))
    await world.renew(vm)  # Lightning invoice valid for 10 minutes

    world.at(ordered + HOUR + SECOND)
    assert (await world.vm_check()).deleted == []

    world.at(ordered + timedelta(minutes=65, seconds=1))
    assert (await world.vm_check()).deleted == [vm.id]


async def test_late_payment_of_a_cleaned_up_order_undeletes_and_spawns_it(world: World) -> None:
    vm = await world.shop.order()
    ordered = world.now
    world.at(ordered + timedelta(minutes=55))
    invoice = await world.renew(vm)
    world.at(ordered + 2 * HOUR)
    await world.vm_check()
    assert (await world.shop.vm(vm.id)).deleted

    await world.complete(invoice)  # settled after its expiry: still completed (§13 item 3)
    await world.run_jobs()

    back = await world.shop.vm(vm.id)
    assert not back.deleted and back.is_provisioned
    assert world.host_state(vm.id) == "running"


async def test_paid_vm_missing_from_its_host_is_spawned_again(world: World) -> None:
    vm = await world.paid_vm()
    await world.host.inner.delete_vm(vm)

    report = await world.vm_check()

    assert report.checked == [vm.id]
    assert world.host_state(vm.id) == "running"
    assert world.host.calls.get("create_vm") == 2


async def test_a_vm_given_time_without_a_payment_is_spawned_again_like_a_paid_one(
    world: World,
) -> None:
    """An LNVPS VM adopted with time but no paid payment keeps `is_setup = 0` (D18); the
    check skipped it, so a host that lost it never got it back, time bought or not."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        await uow.subscriptions.update(attrs.evolve(sub, is_setup=False))
        await uow.commit()
    await world.host.inner.delete_vm(vm)

    report = await world.vm_check()

    assert report.checked == [vm.id] and report.deleted == []
    assert world.host_state(vm.id) == "running"
    assert world.host.calls.get("create_vm") == 2
    assert not (await world.shop.vm(vm.id)).deleted


async def test_expired_vm_missing_from_its_host_is_left_alone_and_never_deleted(
    world: World,
) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    await world.host.inner.delete_vm(vm)
    world.at(sub.expires + DAY)

    await world.vm_check()

    assert world.host.calls.get("create_vm") == 1
    assert not (await world.shop.vm(vm.id)).deleted  # §13 items 27, 28


async def test_an_expired_vm_its_host_booted_again_is_stopped_once_and_can_resume(
    world: World,
) -> None:
    """Its node rebooted with the VM still marked to start on boot (review r17): the expiry
    stop is not repeated (D15), so the VM check stops it, with one more Expired entry."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    await world.lifecycle()
    assert world.host_state(vm.id) == "stopped"
    world.advance(HOUR)
    await world.host.inner.start_vm(vm)  # the node rebooted and booted it

    await world.vm_check()
    assert world.host_state(vm.id) == "stopped"
    assert len(await world.history(vm, H.EXPIRED)) == 2
    state = await world.states.get(vm.id)
    assert state is not None and state.state.value == "stopped"

    await world.vm_check()  # stopped already: nothing more stopped or recorded
    assert len(await world.history(vm, H.EXPIRED)) == 2
    assert world.host.calls.get("stop_vm") == 2

    await world.complete(await world.renew(vm))  # the renewal still starts it again
    await world.run_jobs()
    assert world.host_state(vm.id) == "running"


async def test_an_expired_vm_started_since_its_expiry_stop_is_left_running(world: World) -> None:
    """Only the expiry stop is enforced: a start recorded after it (an admin's) is kept."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    await world.lifecycle()
    async with world.shop.factory() as uow:
        await uow.vm_history.add(history(vm.id, H.STARTED, world.now, "started by an admin"))
        await uow.commit()
    await world.host.inner.start_vm(vm)

    await world.vm_check()

    assert world.host_state(vm.id) == "running"
    assert len(await world.history(vm, H.EXPIRED)) == 1


async def test_check_vms_caches_host_states(world: World) -> None:
    vm = await world.paid_vm()
    await world.host.inner.stop_vm(vm)

    await world.vm_check()

    state = await world.states.get(vm.id)
    assert state is not None and state.state.value == "stopped"
    assert world.host_state(vm.id) == "stopped"  # a user's stop is not undone


async def test_unreachable_host_is_skipped_and_reported(world: World) -> None:
    vm = await world.paid_vm()
    world.host.broken.add("get_all_vm_states")

    report = await world.vm_check()

    assert report.failed == [vm.id]
    assert world.host.calls["get_all_vm_states"] == 3  # retried with backoff


class _ByHost:
    """A VmHostResolver with one client per host row."""

    def __init__(self, clients: dict[int, VmHost]) -> None:
        self.clients = clients

    def for_host(self, host: Host) -> VmHost:
        return self.clients[host.id]


async def test_a_host_that_hangs_holds_up_no_other_host(world: World) -> None:
    """Host 1 does not answer (until its call times out); host 2 is read meanwhile."""
    first = await world.paid_vm()
    second = await world.paid_vm()
    async with world.shop.factory() as uow:
        other = await add_host(uow, region_id=1, name="kvm2", ip="10.0.0.2")
        await uow.vms.update(attrs.evolve(second, host_id=other.id))
        await uow.commit()
    hung = CountingHost(DummyVmHost(None, world.clock))
    hung.hold("get_all_vm_states")
    deps = attrs.evolve(world.deps, hosts=_ByHost({first.host_id: hung, other.id: world.host}))
    calls = world.host.calls.get("get_all_vm_states", 0)

    check = asyncio.create_task(check_vms(deps))
    await asyncio.wait_for(hung.entered("get_all_vm_states").wait(), 5)
    for _ in range(100):  # host 2's read needs no answer from host 1
        if world.host.calls.get("get_all_vm_states", 0) > calls:
            break
        await asyncio.sleep(0.01)

    assert world.host.calls.get("get_all_vm_states", 0) == calls + 1
    check.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await check


async def test_a_renewal_paid_while_a_rebooted_expired_vm_is_stopped_starts_it(
    world: World,
) -> None:
    """The renewal's own check sees the VM running (the stop is still on its way) and does
    nothing; the stop, once recorded, sees the payment and sends a CheckVm that starts it."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + timedelta(hours=1))
    await world.lifecycle()  # the expiry stop
    world.advance(timedelta(hours=1))
    await world.host.inner.start_vm(vm)  # its node rebooted and booted it
    world.host.hold("stop_vm")
    check = asyncio.create_task(world.vm_check())  # stop_expired_again, under the lease
    await asyncio.wait_for(world.host.entered("stop_vm").wait(), 5)
    await world.complete(await world.renew(vm))  # the owner renews meanwhile
    await world.run_jobs()  # the renewal's check: running and paid, nothing to do
    world.host.let_go("stop_vm")
    await check
    await world.run_jobs()
    assert world.host_state(vm.id) == "running"
    assert [h.action_type for h in await world.history(vm, H.EXPIRED)] == [H.EXPIRED] * 2
