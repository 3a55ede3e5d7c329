"""An upgrade paid after its VM was deleted, on memory, SQLite and MariaDB.

Deleting a VM expires and cancels its pending invoices (D24), but a Lightning node may have
settled the upgrade's just before the cancel (or a card capture, or an admin's completion,
comes after it). Paying an upgrade revives nothing (D12), so it is not applied: its value
becomes account credit in its subscription's currency, once, and the payer and the admins
are told, as for every other upgrade not applied. Before, the money was kept for nothing.
One paid from account credit alone is refused (422) and its credit given back.
"""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

import pytest

from app.billing.credit_balance import adjust_credit
from app.billing.credit_quote import Settle
from app.billing.credit_release import release_expired_credit
from app.billing.credit_settle import completion_settle
from app.worker.jobs import delete_by_admin
from domain.account_credit import CreditReason
from domain.credit import payment_meta
from domain.enums import PaymentMethod
from domain.enums import VmHistoryActionType as H
from domain.model import SubscriptionPayment, Vm
from domain.price_basis import CREDIT_KEY
from domain.upgrade import UpgradeConfig, VmDeleted
from ports.jobs import DeleteVm, ProcessVmUpgrade
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world_with_rails("payment_canceller")

BIGGER = UpgradeConfig(new_cpu=4)  # the template VM has 2 CPUs
NOT_APPLIED = "Upgrade paid but not applied"
TOLD = "Payment added to your account credit"


async def _upgrade(
    world: World,
    vm: Vm,
    method: PaymentMethod = PaymentMethod.LIGHTNING,
    settle: Settle | None = None,
) -> SubscriptionPayment:
    return await upgrade_payment(world.shop, vm, BIGGER, method=method, settle=settle)


async def _deleted(world: World, vm: Vm) -> None:
    await delete_by_admin(world.deps, DeleteVm(vm_id=vm.id, reason="abuse"))
    assert (await world.shop.vm(vm.id)).deleted
    world.advance(timedelta(minutes=1))


async def _give(world: World, cents: int) -> None:
    shop = world.shop
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=ALICE,
        user_id=ALICE,
        currency="EUR",
        amount=cents,
        note="test",
    )


async def _credited(world: World, payment: SubscriptionPayment) -> list[int]:
    async with world.shop.factory() as uow:
        entries = await uow.credit_ledger.list_by_reference(payment.id.hex())
    return [e.amount for e in entries if e.reason is CreditReason.OVERPAYMENT]


def _floored_cents(msat: int, eur_per_btc: object) -> int:
    """msat in EUR cents, rounded down: never more than arrived."""
    exact = Fraction(msat) * Fraction(str(eur_per_btc)) * 100 / 100_000_000_000
    return exact.numerator // exact.denominator


async def _assert_not_applied(world: World, vm: Vm, upgrade: SubscriptionPayment) -> str:
    """Paid and invoiced; the VM still deleted and as it was; nothing resized; the reason
    the admins were given."""
    found = await world.shop.vm(vm.id)
    assert found.deleted and found.resize_requested is None
    assert (found.template_id, found.custom_template_id) == (vm.template_id, None)
    assert await world.history(vm, H.CONFIGURATION_CHANGED) == []
    assert world.host_state(vm.id) is None  # not re-created
    paid = await world.shop.payment(upgrade.id)
    assert paid.is_paid
    credit = payment_meta(paid)[CREDIT_KEY]
    assert credit["mode"] == "unrestorable" and credit["seconds"] == 0
    async with world.shop.factory() as uow:
        assert await uow.invoices.get_by_payment(paid.id) is not None
    [why] = credit["changes"]
    assert why == f"VM {vm.id} was deleted before its upgrade was paid"
    return str(why)


async def _assert_told(world: World, vm: Vm, why: str) -> None:
    sub = await world.sub(vm)
    [told] = world.notifier.titled(f"[Subscription {sub.id}] {TOLD}")
    assert told.user_id == sub.user_id
    assert "after the VM it was to upgrade had been deleted" in told.message
    assert "added to your account credit" in told.message
    [admins] = world.notifier.titled(f"[Subscription {sub.id}] {NOT_APPLIED}")
    assert why in admins.message


async def test_a_lightning_upgrade_settled_after_the_delete_becomes_credit_once(
    world: World,
) -> None:
    vm = await world.paid_vm()
    upgrade = await _upgrade(world, vm)
    await _deleted(world, vm)
    assert (await world.shop.payment(upgrade.id)).expires <= world.now  # D24: expired
    assert upgrade.id in world.shop.node.cancelled  # and cancelled at its node
    sub = await world.sub(vm)

    late = await world.complete(upgrade)  # the node settled it before the cancel arrived
    await world.run_jobs()

    assert late.completed and not [j for j in late.jobs if isinstance(j, ProcessVmUpgrade)]
    assert late.problems == ()  # not "no live VM on line item …": it is settled
    why = await _assert_not_applied(world, vm, upgrade)
    await _assert_told(world, vm, why)
    assert await world.sub(vm) == sub  # D12: no time, nothing revived
    value = _floored_cents(upgrade.amount, upgrade.rate)
    assert value > 0
    assert await _credited(world, upgrade) == [value]
    assert await world.shop.balances() == {"EUR": value}

    assert not (await world.complete(upgrade)).completed  # a replay books nothing more
    await world.run_jobs()
    assert await _credited(world, upgrade) == [value]
    assert await world.shop.balances() == {"EUR": value}
    assert len(world.notifier.titled(f"[Subscription {sub.id}] {TOLD}")) == 1


async def test_a_card_upgrade_captured_after_the_delete_is_credited_in_its_currency(
    world: World,
) -> None:
    vm = await world.paid_vm()
    upgrade = await _upgrade(world, vm, method=PaymentMethod.REVOLUT)
    assert upgrade.currency == "EUR" and upgrade.amount > 0
    await _deleted(world, vm)

    assert (await world.complete(upgrade)).completed

    await _assert_not_applied(world, vm, upgrade)
    assert await _credited(world, upgrade) == [upgrade.amount]
    assert await world.shop.balances() == {"EUR": upgrade.amount}


async def test_the_credit_an_upgrade_applied_comes_back_with_its_value(world: World) -> None:
    """Part paid from the balance, the rest by Lightning, settled after the delete but before
    the expired quote's credit was given back: both parts become credit, once."""
    vm = await world.paid_vm()
    await _give(world, 10)
    settle = completion_settle(world.shop.factory, world.clock, world.shop.rails, world.queue)
    upgrade = await _upgrade(world, vm, settle=settle)
    assert not upgrade.is_paid and upgrade.amount > 0
    assert payment_meta(upgrade)["credit_applied"]["amount"] == 10
    assert await world.shop.balances() == {"EUR": 0}
    await _deleted(world, vm)

    assert (await world.complete(upgrade)).completed
    world.advance(timedelta(hours=1))
    assert await release_expired_credit(world.shop.factory, world.clock) == 0  # it was paid

    await _assert_not_applied(world, vm, upgrade)
    value = _floored_cents(upgrade.amount, upgrade.rate) + 10
    assert await _credited(world, upgrade) == [value]
    assert await world.shop.balances() == {"EUR": value}


async def test_a_covered_upgrade_of_a_vm_deleted_meanwhile_is_refused_unbooked(
    world: World,
) -> None:
    """Paid from account credit alone, an upgrade is booked right after its quote; a delete
    in between leaves nothing booked (422, as its quote answers now), its credit back."""
    vm = await world.paid_vm()
    await _give(world, 10_000)
    settle = completion_settle(world.shop.factory, world.clock, world.shop.rails, world.queue)
    taken: list[bytes] = []

    async def deleted_then_settle(payment_id: bytes) -> object:
        taken.append(payment_id)
        await _deleted(world, vm)
        return await settle(payment_id)

    with pytest.raises(VmDeleted) as refused:
        await _upgrade(world, vm, method=PaymentMethod.REVOLUT, settle=deleted_then_settle)

    assert refused.value.kind == "unprocessable"
    [payment_id] = taken
    withdrawn = await world.shop.payment(payment_id)
    assert not withdrawn.is_paid and withdrawn.expires <= world.now
    async with world.shop.factory() as uow:
        assert await uow.invoices.get_by_payment(payment_id) is None
    assert await world.shop.balances() == {"EUR": 10_000}
    world.advance(timedelta(hours=1))
    assert await release_expired_credit(world.shop.factory, world.clock) == 0  # back once
    assert await world.shop.balances() == {"EUR": 10_000}
    found = await world.shop.vm(vm.id)
    assert found.deleted and found.template_id == vm.template_id
