"""D24 on memory, SQLite and MariaDB: a VM brought back by a payment that overtook its
deletion (grace or admin) is placed as completion places a deleted one: its own host if it
has room, else another host of its region, else it stays deleted and the payment becomes
account credit, once, without the time it bought."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import attrs

from app.worker.jobs import delete_by_admin
from app.worker.lifecycle import LifecycleReport, check_subscriptions
from domain.credit import payment_meta
from domain.exchange import msat_to_fiat
from domain.model import Subscription, SubscriptionPayment, Vm
from domain.price_basis import CREDIT_KEY
from ports.jobs import DeleteVm
from tests.contract import lifecycle_world, storage_backends
from tests.contract.test_unrestorable_payment import (
    NOTICE,
    _assert_moved,
    _credit,
    _disable_template,
    _second_host,
)
from tests.unit.worker.world import DAY, World

database = storage_backends.database
SECOND = timedelta(seconds=1)
GUARD_S = 30
RECREATED = "[VM{}] Re-created after deletion"


world = lifecycle_world.world_with_rails("payment_canceller")


async def _host_full(world: World, vm: Vm) -> None:
    """The VM's host shrunk below the VM's 2 CPUs: once the VM is gone, no room for it."""
    async with world.shop.factory() as uow:
        host = await uow.hosts.get(vm.host_id)
        assert host is not None
        await uow.hosts.update(attrs.evolve(host, cpu=1))
        await uow.commit()


async def _grace_delete_overtaken(
    world: World, while_deleting: Callable[[Vm], Awaitable[None]]
) -> tuple[Vm, SubscriptionPayment, Subscription]:
    """A paid VM past its grace period, a renewal asked for in its last minutes and completed
    while the host deletes the VM; `while_deleting` runs first in that window. The
    subscription as that payment left it is returned too."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + 7 * DAY - timedelta(minutes=5))
    late = await world.renew(vm)
    world.at(sub.expires + 7 * DAY + SECOND)
    world.host.hold("delete_vm")
    run: asyncio.Task[LifecycleReport] = asyncio.create_task(check_subscriptions(world.deps))
    await asyncio.wait_for(world.host.entered("delete_vm").wait(), GUARD_S)
    await while_deleting(vm)
    assert (await asyncio.wait_for(world.complete(late), GUARD_S)).completed
    paid_sub = await world.sub(vm)
    world.host.let_go("delete_vm")
    await run
    await world.run_jobs()
    return vm, late, paid_sub


async def _assert_credited_not_revived(
    world: World, vm: Vm, late: SubscriptionPayment, paid_sub: Subscription
) -> str:
    """The VM stays deleted and is not rebuilt; the payment bought no time and its value is
    account credit once; the subscription no longer keeps the time it bought; the payer and
    the admins are told. The admins' notice text is returned."""
    assert (await world.shop.vm(vm.id)).deleted
    assert world.host_state(vm.id) is None
    assert world.host.calls.get("create_vm") == 1  # the first build only
    paid = await world.shop.payment(late.id)
    assert paid.is_paid and paid.time_value == 0
    credit = payment_meta(paid)[CREDIT_KEY]
    assert credit["mode"] == "unrestorable" and credit["seconds"] == 0
    value = msat_to_fiat(paid.amount, paid.rate)
    assert value > 0
    assert await _credit(world, paid_sub, paid) == [value]
    assert await world.balance(paid_sub) == value
    sub = await world.sub(vm)
    assert paid_sub.expires is not None and sub.expires is not None
    assert sub.expires <= world.now < paid_sub.expires  # the bought time is not kept
    [notice] = [n for n in world.notifier.to_admins() if NOTICE in n.title]
    assert str(late.id.hex()) in notice.message
    [told] = world.notifier.titled(f"[Subscription {sub.id}] Payment added to your account credit")
    assert told.user_id == sub.user_id
    assert not world.notifier.titled(RECREATED.format(vm.id))
    return notice.message


async def test_its_host_full_a_grace_deletion_overtaken_moves_the_vm(world: World) -> None:
    holder: list[int] = []

    async def full_host_and_another(vm: Vm) -> None:
        await _host_full(world, vm)
        holder.append(await _second_host(world))

    vm, _, _ = await _grace_delete_overtaken(world, full_host_and_another)

    await _assert_moved(world, vm, holder[0])
    assert (await world.sub(vm)).is_active
    assert world.notifier.titled(RECREATED.format(vm.id))


async def test_no_room_in_its_region_the_overtaking_payment_becomes_credit(
    world: World,
) -> None:
    async def full_everywhere(vm: Vm) -> None:
        await _host_full(world, vm)
        await _second_host(world, cpu=1)  # too small for the VM's 2 CPUs

    vm, late, paid_sub = await _grace_delete_overtaken(world, full_everywhere)

    why = await _assert_credited_not_revived(world, vm, late, paid_sub)
    assert f"host {vm.host_id} has no room left for VM {vm.id}" in why
    assert not (await world.sub(vm)).is_active  # switched off, as the deletion leaves it
    await world.lifecycle(runs=3, step=timedelta(minutes=1))  # nothing more, credited once
    await world.run_jobs()
    assert await _credit(world, paid_sub, late) == [await world.balance(paid_sub)]
    assert len([n for n in world.notifier.to_admins() if NOTICE in n.title]) == 1


async def test_its_offer_withdrawn_the_overtaking_payment_becomes_credit(world: World) -> None:
    async def withdrawn(vm: Vm) -> None:
        await _disable_template(world, vm)
        await _second_host(world)  # room elsewhere does not matter: the offer is gone

    vm, late, paid_sub = await _grace_delete_overtaken(world, withdrawn)

    why = await _assert_credited_not_revived(world, vm, late, paid_sub)
    assert f"template {vm.template_id} of VM {vm.id} is disabled" in why


async def test_an_admin_delete_overtaken_with_no_room_keeps_the_time_paid_before(
    world: World,
) -> None:
    """An admin deletes a paid VM while its renewal completes, and its host has no room left
    for it: it stays deleted, the renewal is credited and the subscription keeps the expiry
    it had before that renewal (what was paid earlier is not taken); its VM gone, it is
    ended as any admin delete ends it."""
    vm = await world.paid_vm()
    before = await world.sub(vm)
    renewal = await world.renew(vm)
    world.host.hold("delete_vm")
    task = asyncio.create_task(delete_by_admin(world.deps, DeleteVm(vm_id=vm.id, reason="x")))
    await asyncio.wait_for(world.host.entered("delete_vm").wait(), GUARD_S)
    await _host_full(world, vm)
    assert (await asyncio.wait_for(world.complete(renewal), GUARD_S)).completed
    paid_sub = await world.sub(vm)
    world.host.let_go("delete_vm")
    await task
    await world.run_jobs()

    assert (await world.shop.vm(vm.id)).deleted and world.host_state(vm.id) is None
    after = await world.sub(vm)
    assert paid_sub.expires is not None and before.expires is not None
    assert paid_sub.expires > before.expires
    assert after.expires == before.expires and not after.is_active
    paid = await world.shop.payment(renewal.id)
    assert paid.time_value == 0
    assert await _credit(world, before, paid) == [msat_to_fiat(paid.amount, paid.rate)]
    assert not world.notifier.titled(RECREATED.format(vm.id))
    assert len([n for n in world.notifier.to_admins() if NOTICE in n.title]) == 1
