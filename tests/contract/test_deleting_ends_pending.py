"""D24 on memory, SQLite and MariaDB: deleting a VM expires and cancels its pending invoices;
one paid anyway brings the VM back empty, and the notices say so."""

from __future__ import annotations

from datetime import timedelta

from app.billing.lnurl import renew_by_amount
from app.worker.jobs import delete_by_admin
from domain.model import SubscriptionPayment, Vm
from ports.jobs import DeleteVm
from tests.contract import lifecycle_world, storage_backends
from tests.unit.worker.world import DAY, World

database = storage_backends.database
SECOND = timedelta(seconds=1)


world = lifecycle_world.world_with_rails("payment_canceller")


async def _pending(world: World, vm: Vm) -> list[SubscriptionPayment]:
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        return await uow.payments.list_pending_for_subscription(sub.id, world.now)


async def _lnurl(world: World, vm: Vm) -> SubscriptionPayment:
    shop = world.shop
    return await renew_by_amount(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        vm_id=vm.id,
        amount_msat=500_000,
    )


async def _invoices_in_grace(world: World) -> tuple[Vm, list[SubscriptionPayment]]:
    """A paid VM past expiry, stopped, with a renewal and an LNURL invoice asked for in the
    last minutes of its grace period."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    await world.lifecycle()
    world.at(sub.expires + 7 * DAY - timedelta(minutes=5))
    invoices = [await world.renew(vm), await _lnurl(world, vm)]
    assert {p.id for p in await _pending(world, vm)} == {p.id for p in invoices}
    world.at(sub.expires + 7 * DAY + SECOND)
    return vm, invoices


async def test_grace_deletion_expires_and_cancels_the_pending_invoices(world: World) -> None:
    vm, invoices = await _invoices_in_grace(world)
    await world.lifecycle()

    assert (await world.shop.vm(vm.id)).deleted
    assert await _pending(world, vm) == []
    for invoice in invoices:
        assert (await world.shop.payment(invoice.id)).expires == world.now
    assert sorted(world.shop.node.cancelled) == sorted(p.id for p in invoices)


async def test_a_payment_arriving_after_the_deletion_recreates_the_vm_empty(
    world: World,
) -> None:
    """The slow settlement D24 foresees: restored as the reference does, and said plainly."""
    vm, (renewal, _) = await _invoices_in_grace(world)
    await world.lifecycle()
    world.advance(timedelta(minutes=2))

    report = await world.complete(renewal)  # the node settled it before the cancel arrived
    await world.run_jobs()

    again = await world.shop.vm(vm.id)
    assert report.completed and not again.deleted
    assert world.host_state(vm.id) == "running"
    async with world.shop.factory() as uow:
        [ip] = await uow.ip_assignments.list_by_vm(vm.id)
    title = f"[VM{vm.id}] Re-created after deletion"
    [user_notice] = [n for n in world.notifier.to_user(vm.user_id) if n.title == title]
    assert "NEW, EMPTY VM" in user_notice.message and f"New IP: {ip.ip}" in user_notice.message
    assert "addresses were assigned afresh" in user_notice.message
    [admin_notice] = [n for n in world.notifier.to_admins() if n.title == title]
    assert "re-created empty" in admin_notice.message and f"New IP: {ip.ip}" in admin_notice.message
    created = world.notifier.titled(f"[VM{vm.id}] Created")
    assert len(created) == 2  # N10 + N11 of the first build only, none for the rebuild


async def test_admin_deletion_expires_and_cancels_too(world: World) -> None:
    vm = await world.paid_vm()
    invoice = await world.renew(vm)
    await delete_by_admin(world.deps, DeleteVm(vm_id=vm.id, reason="abuse"))

    assert (await world.shop.vm(vm.id)).deleted
    assert await _pending(world, vm) == []
    assert world.shop.node.cancelled == [invoice.id]


async def test_a_rail_that_cannot_cancel_does_not_undo_the_deletion(world: World) -> None:
    vm, invoices = await _invoices_in_grace(world)
    world.shop.node.down = True
    await world.lifecycle()

    assert (await world.shop.vm(vm.id)).deleted
    assert await _pending(world, vm) == []  # expired here even though the node was down
    for invoice in invoices:
        assert (await world.shop.payment(invoice.id)).expires == world.now
    assert world.shop.node.cancelled == []
