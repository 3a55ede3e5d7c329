"""A custom VM sells no growth on a pricing no longer on sale, on memory, SQLite and MariaDB.

An order on a custom pricing the operator disabled, or that expired, is refused; so is an
upgrade of a custom VM on it: refused when quoted (422) before any invoice is made, and one
quoted before the withdrawal and paid after is not applied but becomes account credit once.
The VM itself keeps renewing on it.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from app.billing.credit_balance import adjust_credit
from app.billing.credit_settle import completion_settle
from app.billing.errors import OfferUnavailable, UpgradeNoLongerPossible
from app.billing.upgrades import apply_upgrade, quote_upgrade
from domain.account_credit import CreditReason
from domain.credit import payment_meta
from domain.enums import PaymentMethod
from domain.enums import VmHistoryActionType as H
from domain.model import GIB, SubscriptionPayment, Vm
from domain.money import Currency
from domain.overpayment import excess_value
from domain.price_basis import CREDIT_KEY
from domain.upgrade import UpgradeConfig
from ports.jobs import ProcessVmUpgrade
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE, PRICING
from tests.unit.worker.world import World

# pytest fixtures: one migrated database per backend for the module, emptied per test
database = storage_backends.database
world = lifecycle_world.world


def _eur_rounded_down(payment: SubscriptionPayment) -> int:
    """The payment's msat in EUR cents, exactly and rounded down, as its credit is valued."""
    value = excess_value(payment.amount, Currency.EUR, payment.rate)
    assert value is not None
    return value


BIGGER = UpgradeConfig(new_cpu=4, new_memory=8 * GIB)  # the custom VM has 2 CPUs, 4 GiB
WITHDRAWALS = ["disabled", "expired"]


async def _custom_vm(world: World) -> Vm:
    """A custom VM (2 CPUs, 4 GiB, 80 GiB on the shop's pricing), paid for a month."""
    vm = await world.shop.order_custom()
    await world.complete(await world.renew(vm))
    return await world.shop.vm(vm.id)


async def _withdraw(world: World, how: str) -> None:
    """The operator disables the pricing, or it reaches its expiry (a second ago). Written in
    storage alone: no re-pricing sweep ends a pending quote (the race's worst case)."""
    async with world.shop.factory() as uow:
        pricing = await uow.custom_pricing.get(PRICING)
        assert pricing is not None and pricing.enabled and pricing.expires is None
        if how == "disabled":
            pricing = attrs.evolve(pricing, enabled=False)
        else:
            pricing = attrs.evolve(pricing, expires=world.now - timedelta(seconds=1))
        await uow.custom_pricing.update(pricing)
        await uow.commit()


async def _upgrade(world: World, vm: Vm, **kw: object) -> SubscriptionPayment:
    return await upgrade_payment(world.shop, vm, BIGGER, **kw)  # type: ignore[arg-type]


async def _size(world: World, vm: Vm) -> tuple[int, int]:
    found = await world.shop.vm(vm.id)
    assert found.custom_template_id is not None
    assert found.custom_template_id == vm.custom_template_id
    async with world.shop.factory() as uow:
        custom = await uow.custom_templates.get(found.custom_template_id)
    assert custom is not None
    return custom.cpu, custom.memory


async def _credit_entries(world: World, payment: SubscriptionPayment) -> list[int]:
    async with world.shop.factory() as uow:
        entries = await uow.credit_ledger.list_by_reference(payment.id.hex())
    return [e.amount for e in entries if e.reason is CreditReason.OVERPAYMENT]


@pytest.mark.parametrize("how", WITHDRAWALS)
async def test_an_upgrade_on_a_withdrawn_pricing_is_refused_before_any_invoice(
    world: World, how: str
) -> None:
    vm = await _custom_vm(world)
    shop = world.shop
    await _withdraw(world, how)
    invoices = dict(shop.node.invoices)
    payments = await shop.payments(vm)

    with pytest.raises(OfferUnavailable) as quoted:
        await quote_upgrade(
            shop.factory, shop.clock, shop.rates, user_id=ALICE, vm_id=vm.id, cfg=BIGGER
        )
    with pytest.raises(OfferUnavailable) as invoiced:
        await _upgrade(world, vm)

    for refused in (quoted.value, invoiced.value):
        assert refused.kind == "unprocessable"  # 422
        assert refused.message == (
            f"This VM's custom pricing {'was disabled' if how == 'disabled' else 'has expired'}"
            " and sells no upgrades any more; ask the operator"
        )
    assert shop.node.invoices == invoices  # no invoice asked of the rail
    assert await shop.payments(vm) == payments
    assert await _size(world, vm) == (2, 4 * GIB)
    # the VM keeps renewing on it (a renewal sells no new spec)
    assert (await world.complete(await world.renew(vm))).completed


@pytest.mark.parametrize("how", WITHDRAWALS)
async def test_an_upgrade_quoted_before_the_withdrawal_and_paid_after_becomes_credit(
    world: World, how: str
) -> None:
    vm = await _custom_vm(world)
    sub = await world.sub(vm)
    upgrade = await _upgrade(world, vm)
    world.advance(timedelta(minutes=5))
    await _withdraw(world, how)

    late = await world.complete(upgrade)
    await world.run_jobs()

    assert late.completed and not [j for j in late.jobs if isinstance(j, ProcessVmUpgrade)]
    assert await _size(world, vm) == (2, 4 * GIB)
    assert (await world.shop.vm(vm.id)).resize_requested is None
    assert await world.history(vm, H.CONFIGURATION_CHANGED) == []
    assert await world.sub(vm) == sub  # an upgrade buys no time (D12)
    paid = await world.shop.payment(upgrade.id)
    assert paid.is_paid
    credit = payment_meta(paid)[CREDIT_KEY]
    [why] = credit["changes"]
    assert why.startswith(f"the upgrade of VM {vm.id} can no longer be made: ")
    assert ("was disabled" if how == "disabled" else "has expired") in why
    value = _eur_rounded_down(paid)
    assert value > 0 and await _credit_entries(world, paid) == [value]
    [told] = world.notifier.titled(f"[Subscription {sub.id}] Payment added to your account credit")
    assert "could no longer be made as quoted" in told.message

    assert not (await world.complete(upgrade)).completed  # a replay books nothing more
    assert await _credit_entries(world, paid) == [value]
    async with world.shop.factory() as uow:
        assert await uow.credit_ledger.balances(ALICE) == {"EUR": value}


async def test_an_upgrade_paid_after_its_pricing_reached_its_expiry_becomes_credit(
    world: World,
) -> None:
    """No admin acts: the pricing's own `expires`, set before the quote, passes before the
    payment completes. Nothing ends the quote then; the completion refuses it the way it
    refuses one quoted before a withdrawal (not applied, credited once)."""
    vm = await _custom_vm(world)
    async with world.shop.factory() as uow:
        pricing = await uow.custom_pricing.get(PRICING)
        assert pricing is not None
        lapse = world.now + timedelta(minutes=2)
        await uow.custom_pricing.update(attrs.evolve(pricing, expires=lapse))
        await uow.commit()
    upgrade = await _upgrade(world, vm)  # on sale still: quoted
    world.advance(timedelta(minutes=3))

    late = await world.complete(upgrade)

    assert late.completed and not [j for j in late.jobs if isinstance(j, ProcessVmUpgrade)]
    assert await _size(world, vm) == (2, 4 * GIB)
    paid = await world.shop.payment(upgrade.id)
    [why] = payment_meta(paid)[CREDIT_KEY]["changes"]
    assert why.startswith(f"the upgrade of VM {vm.id} can no longer be made: ")
    assert "has expired" in why
    assert await _credit_entries(world, paid) == [_eur_rounded_down(paid)]


async def test_a_covered_upgrade_whose_pricing_expired_meanwhile_is_refused_unbooked(
    world: World,
) -> None:
    """Paid from account credit alone, the upgrade is booked right after its quote; the
    pricing expiring in between leaves nothing booked (409), its credit given back."""
    vm = await _custom_vm(world)
    shop = world.shop
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=ALICE,
        user_id=ALICE,
        currency="EUR",
        amount=100_000,
        note="test",
    )
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)

    async def expired_then_settle(payment_id: bytes) -> object:
        await _withdraw(world, "expired")
        return await settle(payment_id)

    with pytest.raises(UpgradeNoLongerPossible):
        await _upgrade(world, vm, method=PaymentMethod.REVOLUT, settle=expired_then_settle)
    assert await _size(world, vm) == (2, 4 * GIB)
    async with shop.factory() as uow:
        assert await uow.credit_ledger.balances(ALICE) == {"EUR": 100_000}


async def test_an_applied_upgrade_replayed_after_the_withdrawal_changes_nothing(
    world: World,
) -> None:
    """A job that applies the records again (a redelivery) after the pricing was disabled
    finds the upgrade made: nothing to do, no failure reported."""
    vm = await _custom_vm(world)
    await world.complete(await _upgrade(world, vm))
    await world.run_jobs()
    assert await _size(world, vm) == (4, 8 * GIB)
    await _withdraw(world, "disabled")

    assert await apply_upgrade(world.shop.factory, world.clock, vm_id=vm.id, cfg=BIGGER) is None
    assert await _size(world, vm) == (4, 8 * GIB)
