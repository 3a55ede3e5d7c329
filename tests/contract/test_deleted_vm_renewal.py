"""A deleted VM is not renewed, on memory, SQLite and MariaDB: the worker's auto-renewal of a
subscription whose VM an admin deleted charges neither the user's NWC wallet nor the account
credit and asks nothing of the user; a renewal the user asks for is refused on every path
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
from domain.model import Subscription, Vm
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import notice_titles, with_renewer
from tests.unit.worker.world import DAY, World

database = storage_backends.database
world = lifecycle_world.world_with_rails("payment_canceller")
WALLET = "nostr+walletconnect://wallet"
SECOND = timedelta(seconds=1)


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


async def _balance(world: World, sub: Subscription) -> int:
    async with world.shop.factory() as uow:
        return (await uow.credit_ledger.balances(sub.user_id)).get(sub.currency, 0)


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


@pytest.mark.parametrize(
    ("nwc", "credit"),
    [(WALLET, 0), (WALLET, 1_000_000), (None, 1_000_000)],
    ids=["wallet", "credit-and-wallet", "no-wallet"],
)
async def test_the_worker_does_not_renew_a_subscription_whose_vm_an_admin_deleted(
    world: World, nwc: str | None, credit: int
) -> None:
    """Its subscription stays active with auto-renewal on and its future expiry, so the
    expiring-soon action comes due: it is claimed once but tries no renewal (no invoice, no
    wallet payment, no credit spent, the VM stays deleted) and sends no "Expiring Soon"
    asking the user, told of the deletion, to renew what cannot be renewed."""
    wallet = with_renewer(world)
    vm = await world.paid_vm()
    sub = await _opted_in(world, vm, nwc, credit)
    paid_before = await world.shop.payments(vm)
    await _admin_deletes(world, vm)
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=12))

    reports = await world.lifecycle(runs=3, step=timedelta(seconds=30))
    await world.run_jobs()

    [due] = [a for r in reports for a in r.done]
    expected = LifecycleAction.AUTO_RENEW_ATTEMPT if nwc else LifecycleAction.EXPIRING_SOON_NOTICE
    assert due.action is expected
    assert wallet.asked == []
    assert await _balance(world, sub) == credit
    assert await world.shop.payments(vm) == paid_before
    assert (await world.sub(vm)).expires == sub.expires
    assert (await world.shop.vm(vm.id)).deleted and world.host_state(vm.id) is None
    user, _ = notice_titles(world, sub.user_id)
    assert user == [f"[VM{vm.id}] Created", f"[VM{vm.id}] Deleted by Admin"]


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
    assert await _balance(world, sub) == 1_000_000
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
    assert wallet.asked == [] and await _balance(world, sub) == 1_000_000
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
    assert await _balance(world, sub) == 1
    assert (await world.shop.vm(vm.id)).deleted
