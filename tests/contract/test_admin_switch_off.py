"""An admin's switch-off on memory, SQLite and MariaDB: renewals end at once, the service ends
at its paid expiry as an unpaid one's does, and no payment switches it on again."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs
import pytest

from app.admin.subscriptions import SubscriptionPatch, update_subscription
from app.admin.vms import extend_vm
from app.billing.lnurl import renew_by_amount
from app.billing.upgrades import quote_upgrade
from app.worker.lifecycle import LifecycleReport
from domain.account_credit import CreditReason
from domain.credit import payment_meta
from domain.enums import PaymentMethod, SwitchedOff
from domain.errors import SubscriptionSwitchedOff
from domain.exchange import msat_to_fiat
from domain.lifecycle import LifecycleAction
from domain.model import IpRangeSubscription, Subscription, SubscriptionPayment, Vm
from domain.price_basis import CREDIT_KEY
from domain.upgrade import UpgradeConfig
from ports.storage import DueWindow
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import BOB
from tests.unit.worker.world import DAY, World

database = storage_backends.database
SECOND = timedelta(seconds=1)
#: a month's VM (paid for 28+ days) gets 7 days of grace (D16)
GRACE = 7 * DAY

world = lifecycle_world.world_with_rails("payment_canceller")


async def _patch(world: World, sub: Subscription, **fields: object) -> Subscription:
    return await update_subscription(
        world.shop.factory,
        sub.id,
        SubscriptionPatch(**fields),  # type: ignore[arg-type]
        clock=world.clock,
        rails=world.shop.rails,
        admin_id=BOB,
    )


async def _stored(world: World, sub_id: int) -> Subscription:
    async with world.shop.factory() as uow:
        found = await uow.subscriptions.get(sub_id)
    assert found is not None
    return found


async def _range(world: World, sold: IpRangeSubscription) -> IpRangeSubscription:
    async with world.shop.factory() as uow:
        found = await uow.ip_range_subscriptions.get(sold.id)
    assert found is not None
    return found


async def _paid_range(
    world: World, cidr: str = "203.0.113.8/29"
) -> tuple[Subscription, IpRangeSubscription]:
    """An IP-range subscription paid for one month, its /29 allocated and active."""
    sub, sold = await world.ip_range_subscription(cidr)
    report = await world.complete(await world.renew(subscription_id=sub.id))
    assert report.completed
    return await _stored(world, sub.id), sold


async def _balance(world: World, sub: Subscription) -> int:
    async with world.shop.factory() as uow:
        return (await uow.credit_ledger.balances(sub.user_id)).get(sub.currency, 0)


def _actions(reports: list[LifecycleReport]) -> list[LifecycleAction]:
    return [d.action for r in reports for d in r.done]


async def test_switched_off_ip_range_ends_at_its_paid_expiry(world: World) -> None:
    """The switched-off range keeps its paid time, ends at the expiry, and the subscription
    is ended after the grace period: the lifecycle is then done with it."""
    sub, sold = await _paid_range(world)
    assert sub.expires is not None
    off = await _patch(world, sub, is_active=False)
    assert not off.is_active and off.switched_off is SwitchedOff.WINDING_DOWN

    world.at(sub.expires - 12 * 3600 * SECOND)  # inside the expiring-soon window
    assert _actions(await world.lifecycle()) == []  # no notice: it cannot be renewed
    assert (await _range(world, sold)).is_active  # paid time is kept

    world.at(sub.expires + SECOND)
    done = _actions(await world.lifecycle(runs=2))
    assert done == [LifecycleAction.STOP_ON_EXPIRY, LifecycleAction.DEACTIVATE_ADDONS]
    ended = await _range(world, sold)
    assert not ended.is_active and ended.ended_at == world.now
    [expired] = world.notifier.titled(f"[Sub #{sub.id}] Expired")
    assert "switched off by an administrator" in expired.message
    assert "Renew" not in expired.message

    world.at(sub.expires + GRACE + SECOND)
    assert _actions(await world.lifecycle(runs=2)) == [LifecycleAction.DELETE_AFTER_GRACE]
    after = await _stored(world, sub.id)
    assert not after.is_active and after.switched_off is SwitchedOff.ENDED
    [cancelled] = world.notifier.titled(f"[Sub #{sub.id}] Cancelled")
    assert "switched off by an administrator" in cancelled.message

    world.advance(120 * DAY)  # ended: no longer among the due ones
    reports = await world.lifecycle(runs=3, step=30 * SECOND)
    assert [r.due for r in reports] == [0, 0, 0]


async def test_switched_off_vm_runs_its_paid_time_then_is_stopped_and_deleted(
    world: World,
) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    await _patch(world, sub, is_active=False)

    world.at(sub.expires - 12 * 3600 * SECOND)
    assert _actions(await world.lifecycle()) == []
    await world.vm_check()
    assert world.host_state(vm.id) == "running"  # paid until its expiry

    world.at(sub.expires + SECOND)
    await world.lifecycle(runs=2)
    assert world.host_state(vm.id) == "stopped"
    [stopped] = world.notifier.titled(f"[VM{vm.id}] Expired")
    assert "switched off by an administrator" in stopped.message
    assert "Renew" not in stopped.message
    await world.vm_check()
    await world.run_jobs()
    assert world.host_state(vm.id) == "stopped"  # nothing starts it again

    world.at(sub.expires + GRACE + SECOND)
    await world.lifecycle(runs=2)
    assert (await world.shop.vm(vm.id)).deleted
    assert world.host_state(vm.id) is None
    assert (await world.sub(vm)).switched_off is SwitchedOff.ENDED
    [cancelled] = world.notifier.titled(f"[VM{vm.id}] Cancelled")
    assert "switched off by an administrator" in cancelled.message
    assert len(world.notifier.titled(f"[VM{vm.id}] Deleted")) == 1  # the admins' N8


async def test_switch_off_ends_pending_invoices_and_refuses_new_ones(world: World) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    pending = [await world.renew(vm), await _lnurl(world, vm), await _upgrade(world, vm)]

    await _patch(world, sub, is_active=False)

    for invoice in pending:
        assert (await world.shop.payment(invoice.id)).expires == world.now
    assert sorted(world.shop.node.cancelled) == sorted(p.id for p in pending)
    with pytest.raises(SubscriptionSwitchedOff, match="switched off by an administrator"):
        await world.renew(vm)
    with pytest.raises(SubscriptionSwitchedOff):
        await world.renew(subscription_id=sub.id)
    with pytest.raises(SubscriptionSwitchedOff):
        await _lnurl(world, vm)
    with pytest.raises(SubscriptionSwitchedOff):  # refused before its rail is asked
        await _upgrade(world, vm)
    assert len(world.shop.node.cancelled) == len(pending)
    async with world.shop.factory() as uow:
        assert await uow.payments.list_pending_for_subscription(sub.id, world.now) == []


async def test_an_upgrade_of_a_switched_off_subscription_asks_no_rail(world: World) -> None:
    """Neither a price nor an invoice for an upgrade once an admin switched the subscription
    off: refused (422) before a Lightning invoice or a card order is made, so none has to be
    cancelled, and nothing is stored."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    await _patch(world, sub, is_active=False)
    node, card = world.shop.node, world.shop.revolut
    invoices, orders = len(node.invoices), len(card.orders)

    for method in (PaymentMethod.LIGHTNING, PaymentMethod.REVOLUT):
        with pytest.raises(SubscriptionSwitchedOff, match="cannot be upgraded") as refused:
            await _upgrade(world, vm, method)
        assert refused.value.kind == "unprocessable"
    with pytest.raises(SubscriptionSwitchedOff, match="cannot be upgraded"):
        await quote_upgrade(
            world.shop.factory,
            world.clock,
            world.shop.rates,
            user_id=vm.user_id,
            vm_id=vm.id,
            cfg=UpgradeConfig(new_cpu=4),
        )

    assert (len(node.invoices), len(card.orders)) == (invoices, orders)
    assert node.cancelled == [] and card.cancelled == []
    assert [p.is_paid for p in await world.shop.payments(vm)] == [True]  # the first month


async def test_a_renewal_paid_after_the_switch_off_is_credit_not_a_switch_on(
    world: World,
) -> None:
    """An invoice issued before the switch-off and paid anyway (a slow settlement) is booked
    as account credit by value; the subscription stays off and its range ended."""
    sub, sold = await _paid_range(world)
    async with world.shop.factory() as uow:  # say an operator ended it at once
        await uow.ip_range_subscriptions.set_active(sold.id, False, world.now)
        await uow.commit()
    world.advance(DAY)
    renewal = await world.renew(subscription_id=sub.id)
    off = await _patch(world, sub, is_active=False)
    world.advance(timedelta(minutes=2))

    report = await world.complete(renewal)
    await world.run_jobs()

    assert report.completed
    assert await _stored(world, sub.id) == off
    assert not (await _range(world, sold)).is_active
    paid = await world.shop.payment(renewal.id)
    assert paid.is_paid and paid.time_value == 0
    credit = payment_meta(paid)[CREDIT_KEY]
    assert credit["mode"] == "unrestorable" and credit["seconds"] == 0
    value = msat_to_fiat(paid.amount, paid.rate)
    assert value > 0 and await _balance(world, sub) == value
    [told] = world.notifier.titled(f"[Subscription {sub.id}] Payment added to your account credit")
    assert "switched off by an administrator" in told.message
    [admins] = world.notifier.titled(
        f"[Subscription {sub.id}] Payment for a switched-off subscription"
    )
    assert admins.user_id is None and renewal.id.hex() in admins.message

    again = await world.complete(renewal)  # a replayed settlement changes nothing
    assert not again.completed and await _balance(world, sub) == value
    async with world.shop.factory() as uow:
        entries = await uow.credit_ledger.list_by_reference(renewal.id.hex())
    assert [e.reason for e in entries] == [CreditReason.OVERPAYMENT]


async def test_switching_on_again_restores_renewals_and_the_lifecycle(world: World) -> None:
    sub, sold = await _paid_range(world)
    assert sub.expires is not None
    await _patch(world, sub, is_active=False)
    world.at(sub.expires + SECOND)
    await world.lifecycle()
    assert not (await _range(world, sold)).is_active

    on = await _patch(world, sub, is_active=True)
    assert on.is_active and on.switched_off is None
    report = await world.complete(await world.renew(subscription_id=sub.id))

    assert report.completed
    renewed = await _stored(world, sub.id)
    assert renewed.is_active and renewed.expires is not None and renewed.expires > world.now
    assert (await _range(world, sold)).is_active
    world.at(renewed.expires - 12 * 3600 * SECOND)
    assert _actions(await world.lifecycle()) == [LifecycleAction.EXPIRING_SOON_NOTICE]


async def test_an_edit_of_a_cancelled_subscription_is_no_switch_off(world: World) -> None:
    """The admin UI sends `is_active` with every edit: an unchanged `false` on a subscription
    the grace deletion cancelled is not a switch-off, and a payment pending at the deletion
    still brings the VM back (D24)."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    await world.lifecycle()
    world.at(sub.expires + GRACE - timedelta(minutes=5))
    renewal = await world.renew(vm)
    world.at(sub.expires + GRACE + SECOND)
    await world.lifecycle()
    assert (await world.shop.vm(vm.id)).deleted

    edited = await _patch(world, await world.sub(vm), is_active=False, name="renamed")
    assert edited.switched_off is None and not edited.is_active
    report = await world.complete(renewal)
    await world.run_jobs()

    assert report.completed
    assert not (await world.shop.vm(vm.id)).deleted
    assert world.host_state(vm.id) == "running"
    assert (await world.sub(vm)).is_active


async def test_an_admin_extend_moves_the_end_and_switches_nothing_on(world: World) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    await _patch(world, sub, is_active=False)

    extension = await extend_vm(
        world.shop.factory, world.clock, world.queue, vm_id=vm.id, days=10, admin_id=1
    )
    await world.run_jobs()

    extended = await world.sub(vm)
    assert extended.expires == sub.expires + 10 * DAY == extension.new_expires
    assert not extended.is_active and extended.switched_off is SwitchedOff.WINDING_DOWN
    with pytest.raises(SubscriptionSwitchedOff):
        await world.renew(vm)
    world.at(sub.expires + SECOND)
    await world.lifecycle()
    assert world.host_state(vm.id) == "running"  # not at the old expiry
    world.at(extended.expires + SECOND)
    await world.lifecycle()
    assert world.host_state(vm.id) == "stopped"


async def test_the_due_list_holds_a_switched_off_one_until_it_has_ended(world: World) -> None:
    """`list_due` (the lifecycle's read) keeps an inactive subscription only while its
    switch-off still has an end to come."""
    subs = [(await _paid_range(world, f"203.0.113.{8 * n}/29"))[0] for n in (1, 2, 3)]
    assert subs[0].expires is not None
    await _patch(world, subs[0], is_active=False)  # winding down
    await _patch(world, subs[1], is_active=False)
    async with world.shop.factory() as uow:
        gone = await uow.subscriptions.get_for_update(subs[1].id)
        assert gone is not None
        await uow.subscriptions.update(_as(gone, SwitchedOff.ENDED))
        cancelled = await uow.subscriptions.get_for_update(subs[2].id)
        assert cancelled is not None
        await uow.subscriptions.update(_inactive(cancelled))
        await uow.commit()
    at = subs[0].expires + SECOND
    assert [s.id for s in await _due(world, at)] == [subs[0].id]


def _as(sub: Subscription, state: SwitchedOff) -> Subscription:
    return attrs.evolve(sub, is_active=False, switched_off=state)


def _inactive(sub: Subscription) -> Subscription:
    return attrs.evolve(sub, is_active=False)


async def _due(world: World, now: datetime) -> list[Subscription]:
    async with world.shop.factory() as uow:
        return await uow.subscriptions.list_due(DueWindow(now, timedelta(0)), 100)


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


async def _upgrade(
    world: World, vm: Vm, method: PaymentMethod = PaymentMethod.LIGHTNING
) -> SubscriptionPayment:
    return await upgrade_payment(world.shop, vm, user_id=vm.user_id, method=method)
