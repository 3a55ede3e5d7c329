"""A deleted VM is not renewed, on memory, SQLite and MariaDB: an admin's delete ends the
subscription (its IP ranges too), so the worker neither renews it nor nags nor later says it was
"not renewed"; one an earlier version left active charges neither the user's NWC wallet nor the
account credit and asks nothing of the user; a renewal the user asks for is refused on every path
(`VmDeleted`, 422 by subscription; "VM not found" by VM); the grace deletion likewise. D24's
revival stays for a payment that was pending when the VM was deleted (its own tests)."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from app.admin.vm_removal import delete_vm
from app.billing.credit_balance import adjust_credit
from app.billing.credit_settle import completion_settle
from app.billing.errors import VmDeleted, VmNotFound
from app.billing.lnurl import renew_by_amount
from app.billing.renewal import renew
from domain.enums import PaymentMethod
from domain.lifecycle import LifecycleAction
from domain.model import IpRangeSubscription, Subscription, Vm
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import notice_titles, with_renewer
from tests.unit.worker.world import DAY, World

database = storage_backends.database
world = lifecycle_world.world_with_rails("payment_canceller")
WALLET = "nostr+walletconnect://wallet"
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
RUN = timedelta(seconds=30)


async def _opted_in(world: World, vm: Vm, nwc: str | None, credit: int) -> Subscription:
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        await uow.subscriptions.update(attrs.evolve(sub, auto_renewal_enabled=True))
        user = await uow.users.get(sub.user_id)
        assert user is not None
        await uow.users.update(attrs.evolve(user, nwc_connection_string=nwc))
        await uow.commit()
    if credit:
        await adjust_credit(
            world.shop.factory,
            world.clock,
            admin_id=sub.user_id,
            user_id=sub.user_id,
            currency=sub.currency,
            amount=credit,
            note="test",
        )
    return await world.sub(vm)


async def _admin_deletes(world: World, vm: Vm) -> None:
    shop = world.shop
    await delete_vm(shop.factory, world.queue, world.clock, vm_id=vm.id, admin_id=7, reason="x")
    await world.run_jobs()
    assert (await shop.vm(vm.id)).deleted


async def _renew_by_subscription(world: World, sub: Subscription) -> object:
    """The user's renewal by subscription id (its HTTP route), account credit first."""
    shop = world.shop
    return await renew(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        user_id=sub.user_id,
        subscription_id=sub.id,
        method=PaymentMethod.LIGHTNING,
        settle=completion_settle(shop.factory, shop.clock, shop.rails, world.queue),
    )


OPTED_IN = pytest.mark.parametrize(
    ("nwc", "credit"),
    [(WALLET, 0), (WALLET, 1_000_000), (None, 1_000_000)],
    ids=["wallet", "credit-and-wallet", "no-wallet"],
)


@OPTED_IN
async def test_an_admin_delete_ends_the_subscription_so_nothing_follows_it(
    world: World, nwc: str | None, credit: int
) -> None:
    """The delete switches the subscription off in its own transaction (as the grace deletion
    does), auto-renewal on and paid time left notwithstanding: no lifecycle step comes due
    before expiry, at expiry or past the grace, so nothing is renewed (no invoice, no wallet
    payment, no credit spent), and the user, told of the deletion, gets no "Expiring Soon"
    nor a "Cancelled" saying the VM was not renewed within the grace period."""
    wallet = with_renewer(world)
    vm = await world.paid_vm()
    sub = await _opted_in(world, vm, nwc, credit)
    paid_before = await world.shop.payments(vm)
    await _admin_deletes(world, vm)
    ended = await world.sub(vm)
    assert not ended.is_active and ended.expires == sub.expires
    assert sub.expires is not None

    reports = []
    for when in (sub.expires - 12 * HOUR, sub.expires + SECOND, sub.expires + 40 * DAY):
        world.at(when)
        reports += await world.lifecycle(runs=2, step=RUN)
        await world.run_jobs()

    assert [a for r in reports for a in r.done] == []
    assert wallet.asked == []
    assert await world.balance(sub) == credit
    assert await world.shop.payments(vm) == paid_before
    assert await world.sub(vm) == ended
    assert (await world.shop.vm(vm.id)).deleted and world.host_state(vm.id) is None
    user, admins = notice_titles(world, sub.user_id)
    assert user == [f"[VM{vm.id}] Created", f"[VM{vm.id}] Deleted by Admin"]
    assert f"[VM{vm.id}] Deleted" not in admins  # no grace deletion (N8)


async def _left_active(world: World, vm: Vm) -> Subscription:
    """The subscription switched on again, as versions before this one left it after an
    admin's delete: such rows are in databases already."""
    async with world.shop.factory() as uow:
        sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
        assert sub is not None and not sub.is_active
        await uow.subscriptions.update(attrs.evolve(sub, is_active=True))
        await uow.commit()
    return await world.sub(vm)


@OPTED_IN
async def test_a_subscription_an_admin_delete_left_active_ends_without_a_false_notice(
    world: World, nwc: str | None, credit: int
) -> None:
    """A subscription left active by an admin's delete (an earlier version's row): the
    expiring-soon step is claimed once but tries no renewal and asks nothing of the user;
    past the grace the lifecycle switches it off without telling the user it was "not
    renewed within the grace period" (it told them of the deletion) and without an admin
    N8 (it deleted no VM)."""
    wallet = with_renewer(world)
    vm = await world.paid_vm()
    await _opted_in(world, vm, nwc, credit)
    paid_before = await world.shop.payments(vm)
    await _admin_deletes(world, vm)
    sub = await _left_active(world, vm)
    assert sub.expires is not None
    world.at(sub.expires - 12 * HOUR)

    reports = await world.lifecycle(runs=3, step=RUN)
    await world.run_jobs()

    [due] = [a for r in reports for a in r.done]
    expected = LifecycleAction.AUTO_RENEW_ATTEMPT if nwc else LifecycleAction.EXPIRING_SOON_NOTICE
    assert due.action is expected
    assert wallet.asked == []
    assert await world.balance(sub) == credit
    assert await world.shop.payments(vm) == paid_before
    assert (await world.sub(vm)).expires == sub.expires

    world.at(sub.expires + 40 * DAY)
    reports = await world.lifecycle(runs=2, step=RUN)
    await world.run_jobs()

    assert [a.action for r in reports for a in r.done] == [LifecycleAction.DELETE_AFTER_GRACE]
    assert not (await world.sub(vm)).is_active
    assert (await world.shop.vm(vm.id)).deleted and world.host_state(vm.id) is None
    user, admins = notice_titles(world, sub.user_id)
    assert user == [f"[VM{vm.id}] Created", f"[VM{vm.id}] Deleted by Admin"]
    assert f"[VM{vm.id}] Deleted" not in admins


async def _with_ip_range(world: World, vm: Vm) -> IpRangeSubscription:
    """An IP range sold on the VM's subscription, as a second line item, allocated now."""
    other, sold = await world.ip_range_subscription()
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        [item] = await uow.line_items.list_by_subscription(other.id)
        await uow.line_items.update(attrs.evolve(item, subscription_id=sub.id))
        await uow.commit()
    return sold


async def _ip_range(world: World, sold: IpRangeSubscription) -> IpRangeSubscription:
    async with world.shop.factory() as uow:
        found = await uow.ip_range_subscriptions.get(sold.id)
    assert found is not None
    return found


async def test_an_admin_delete_ends_an_ip_range_sold_on_the_vms_subscription(
    world: World,
) -> None:
    """The IP range cannot be renewed without the VM, so it ends with the subscription at the
    delete (the lifecycle, which handles active subscriptions only, would never end it);
    past the grace nothing more happens. An invoice that was pending at the delete and is
    paid after it (D24) brings the VM, the subscription and the IP range back."""
    vm = await world.paid_vm()
    sold = await _with_ip_range(world, vm)
    renewal = await world.renew(vm)
    world.advance(HOUR)
    deleted_at = world.now
    await _admin_deletes(world, vm)

    ended = await _ip_range(world, sold)
    assert not ended.is_active and ended.ended_at == deleted_at
    sub = await world.sub(vm)
    assert not sub.is_active and sub.expires is not None
    world.at(sub.expires + 40 * DAY)
    reports = await world.lifecycle(runs=2, step=RUN)
    await world.run_jobs()
    assert [a for r in reports for a in r.done] == []
    user, _ = notice_titles(world, sub.user_id)
    assert user == [f"[VM{vm.id}] Created", f"[VM{vm.id}] Deleted by Admin"]

    assert (await world.complete(renewal)).completed  # expired, still settled at the node
    await world.run_jobs()
    assert (await world.sub(vm)).is_active and not (await world.shop.vm(vm.id)).deleted
    assert (await _ip_range(world, sold)).is_active


async def test_a_renewal_of_an_admin_deleted_vm_is_refused_on_every_path(world: World) -> None:
    """By subscription id (the user's route, and the worker's), 422 with a clear message; by
    VM id and by Lightning address, "VM not found" as for any deleted VM. Nothing is stored
    and no credit is spent."""
    vm = await world.paid_vm()
    sub = await _opted_in(world, vm, WALLET, 1_000_000)
    paid_before = await world.shop.payments(vm)
    await _admin_deletes(world, vm)

    with pytest.raises(VmDeleted, match="VM of this subscription was deleted"):
        await _renew_by_subscription(world, sub)
    with pytest.raises(VmDeleted):
        await world.renew(subscription_id=sub.id)
    with pytest.raises(VmNotFound, match="VM not found"):
        await world.shop.renew(vm)
    shop = world.shop
    with pytest.raises(VmNotFound, match="VM not found"):
        await renew_by_amount(
            shop.factory,
            shop.clock,
            shop.rails,
            shop.rates,
            shop.tax_rates,
            vm_id=vm.id,
            amount_msat=500_000,
        )
    assert VmDeleted.kind == "unprocessable"
    assert await shop.payments(vm) == paid_before
    assert await world.balance(sub) == 1_000_000
    assert (await shop.vm(vm.id)).deleted


async def test_after_the_grace_deletion_nothing_renews_the_vm(world: World) -> None:
    """The lifecycle's own deletion switches the subscription off: the worker never comes
    back to it (no auto-renewal), and the user's renewal is refused as for an admin delete."""
    wallet = with_renewer(world)
    vm = await world.paid_vm()
    sub = await _opted_in(world, vm, WALLET, 1_000_000)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    await world.lifecycle()
    world.at(sub.expires + 14 * DAY + SECOND)
    await world.lifecycle()
    assert (await world.shop.vm(vm.id)).deleted and not (await world.sub(vm)).is_active
    paid_before = await world.shop.payments(vm)

    with pytest.raises(VmDeleted):
        await _renew_by_subscription(world, sub)
    with pytest.raises(VmNotFound):
        await world.shop.renew(vm)
    world.advance(40 * DAY)
    reports = await world.lifecycle(runs=2, step=timedelta(seconds=30))

    assert [a for r in reports for a in r.done] == []
    assert wallet.asked == [] and await world.balance(sub) == 1_000_000
    assert await world.shop.payments(vm) == paid_before
    assert (await world.shop.vm(vm.id)).deleted


async def test_a_renewal_whose_vm_is_deleted_while_its_invoice_is_made_is_not_stored(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin's delete commits between the quote (VM live) and its storing: the storing
    transaction, under the subscription's lock, refuses it and the invoice is cancelled at
    its node, so no invoice outlives the deletion (D24 ended the pending ones) for a wallet
    to pay and revive the VM with; the credit it applied is not spent."""
    vm = await world.paid_vm()
    sub = await _opted_in(world, vm, WALLET, 1)  # covers a part: the rest is invoiced
    paid_before = await world.shop.payments(vm)
    rails = world.shop.rails
    real_create = rails.create
    made = []

    async def deleted_meanwhile(priced: object, now: object) -> object:
        payment = await real_create(priced, now)  # type: ignore[arg-type]
        made.append(payment.id)
        await _admin_deletes(world, vm)
        return payment

    monkeypatch.setattr(rails, "create", deleted_meanwhile)
    with pytest.raises(VmDeleted):
        await _renew_by_subscription(world, sub)

    assert len(made) == 1 and world.shop.node.cancelled == made
    assert await world.shop.payments(vm) == paid_before
    assert await world.balance(sub) == 1
    assert (await world.shop.vm(vm.id)).deleted
