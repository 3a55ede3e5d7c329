"""A paid upgrade is applied only at the charge its quote had, on memory, SQLite and MariaDB.

An upgrade's charge is the target's price less the VM's own, pro-rated to the expiry. A
re-pricing expires the pending upgrade quotes (D23), but a Lightning invoice may settle just
before the cancel: such an upgrade, which the prices in force would charge another amount,
is booked, not applied, and its value becomes account credit once; its payer is told to
quote again and the admins are told why. A price change its charge does not see, and an
old upgrade row that stored no prices, are applied as before.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest

from app.admin.cost_plans import update_cost_plan
from app.admin.custom_pricing import update_pricing
from app.billing import upgrades
from app.billing.credit_balance import adjust_credit
from app.billing.credit_release import release_expired_credit
from app.billing.credit_settle import completion_settle
from app.billing.errors import UpgradeNoLongerPossible, UpgradeRepriced
from domain.account_credit import CreditReason
from domain.credit import payment_meta
from domain.enums import PaymentMethod
from domain.enums import VmHistoryActionType as H
from domain.exchange import msat_to_fiat
from domain.intervals import MONTHLY
from domain.model import SubscriptionPayment, Vm
from domain.money import Currency, Money
from domain.price_basis import CREDIT_KEY
from domain.upgrade import UpgradeConfig, quoted_expiry, upgrade_quote
from domain.upgrade_prices import QUOTED_PRICES_KEY
from ports.jobs import ProcessVmUpgrade
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE, PLAN_EUR_CENTS, PRICING
from tests.unit.worker.world import World

# pytest fixtures: one migrated database per backend for the module, emptied per test
database = storage_backends.database
world = lifecycle_world.world

PLAN = 1  # the world's template's cost plan
BIGGER = UpgradeConfig(new_cpu=4)  # the template VM has 2 CPUs
NOT_APPLIED = "Upgrade paid but not applied"
TOLD = "Payment added to your account credit"


async def _upgrade(world: World, vm: Vm, **kw: object) -> SubscriptionPayment:
    return await upgrade_payment(world.shop, vm, BIGGER, **kw)  # type: ignore[arg-type]


async def _cpu(world: World, vm: Vm) -> int:
    found = await world.shop.vm(vm.id)
    async with world.shop.factory() as uow:
        if found.custom_template_id is not None:
            custom = await uow.custom_templates.get(found.custom_template_id)
            assert custom is not None
            return custom.cpu
        assert found.template_id is not None
        template = await uow.templates.get(found.template_id)
        assert template is not None
        return template.cpu


async def _overpayments(world: World, payment: SubscriptionPayment) -> list[int]:
    async with world.shop.factory() as uow:
        entries = await uow.credit_ledger.list_by_reference(payment.id.hex())
    return [e.amount for e in entries if e.reason is CreditReason.OVERPAYMENT]


async def _assert_applied(world: World, vm: Vm, upgrade: SubscriptionPayment) -> None:
    assert await _cpu(world, vm) == 4
    assert len(await world.history(vm, H.CONFIGURATION_CHANGED)) == 1
    paid = await world.shop.payment(upgrade.id)
    assert paid.is_paid and CREDIT_KEY not in payment_meta(paid)
    assert await _overpayments(world, upgrade) == []


async def _assert_credited(world: World, vm: Vm, upgrade: SubscriptionPayment) -> str:
    """Paid and invoiced; the VM as it was; the payment's whole value as EUR credit, once.
    Returns the reason the admins were given."""
    sub = await world.sub(vm)
    assert await _cpu(world, vm) == 2
    found = await world.shop.vm(vm.id)
    assert found.template_id == vm.template_id and found.resize_requested is None
    assert await world.history(vm, H.CONFIGURATION_CHANGED) == []
    paid = await world.shop.payment(upgrade.id)
    assert paid.is_paid
    credit = payment_meta(paid)[CREDIT_KEY]
    assert credit["mode"] == "unrestorable" and credit["seconds"] == 0
    value = msat_to_fiat(paid.amount, paid.rate)
    assert value > 0
    assert await _overpayments(world, paid) == [value]
    async with world.shop.factory() as uow:
        assert (await uow.credit_ledger.balances(sub.user_id)) == {"EUR": value}
        assert await uow.invoices.get_by_payment(paid.id) is not None
    [why] = credit["changes"]
    assert isinstance(why, str)
    return why


async def _assert_told(world: World, vm: Vm, why: str) -> None:
    sub = await world.sub(vm)
    [told] = world.notifier.titled(f"[Subscription {sub.id}] {TOLD}")
    assert told.user_id == sub.user_id
    assert "prices of the upgrade you asked for had changed" in told.message
    assert "ask for a new upgrade quote" in told.message
    [admins] = world.notifier.titled(f"[Subscription {sub.id}] {NOT_APPLIED}")
    assert why in admins.message


async def _reprice_pricing(world: World, **fields: object) -> None:
    shop = world.shop
    await update_pricing(shop.factory, PRICING, dict(fields), clock=shop.clock, rails=shop.rails)


async def test_an_upgrade_paid_after_its_target_pricing_was_repriced_becomes_credit(
    world: World,
) -> None:
    """The custom pricing a standard VM grows into is made dearer after the quote; the
    re-pricing expires and cancels the invoice, but the node had settled it already."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    upgrade = await _upgrade(world, vm)
    await _reprice_pricing(world, cpu_cost=300)
    assert (await world.shop.payment(upgrade.id)).expires == world.now  # D23: expired
    assert upgrade.id in world.shop.node.cancelled  # and cancelled at its node

    late = await world.complete(upgrade)
    await world.run_jobs()

    assert late.completed and not [j for j in late.jobs if isinstance(j, ProcessVmUpgrade)]
    why = await _assert_credited(world, vm, upgrade)
    assert why == (
        f"the upgrade of VM {vm.id} was quoted at EUR 1.32 per 1 month as it is and EUR "
        "42.00 per month upgraded, and the prices in force are EUR 1.32 per 1 month as it is "
        "and EUR 46.00 per month upgraded, which charge another amount"
    )
    await _assert_told(world, vm, why)
    assert await world.sub(vm) == sub  # an upgrade buys no time (D12)
    assert not (await world.complete(upgrade)).completed  # a replay books nothing more
    await _assert_credited(world, vm, upgrade)


async def test_an_upgrade_paid_after_its_pricing_was_withdrawn_becomes_credit(
    world: World,
) -> None:
    """Its pricing disabled, the upgrade cannot be planned at all any more: refusing it from
    the booking rolled the booking back at every retry (and stopped the settlement intake
    behind it); it is booked, not applied, and its value is credit, once."""
    vm = await world.paid_vm()
    upgrade = await _upgrade(world, vm)
    await _reprice_pricing(world, enabled=False)

    late = await world.complete(upgrade)
    await world.run_jobs()

    assert late.completed and not [j for j in late.jobs if isinstance(j, ProcessVmUpgrade)]
    why = await _assert_credited(world, vm, upgrade)
    assert why.startswith(f"the upgrade of VM {vm.id} can no longer be made: ")
    sub = await world.sub(vm)
    [told] = world.notifier.titled(f"[Subscription {sub.id}] {TOLD}")
    assert "could no longer be made as quoted" in told.message
    assert not (await world.complete(upgrade)).completed
    await _assert_credited(world, vm, upgrade)


async def test_a_covered_upgrade_whose_pricing_was_withdrawn_is_refused_unbooked(
    world: World,
) -> None:
    vm = await world.paid_vm()
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

    async def withdrawn_then_settle(payment_id: bytes) -> object:
        await _reprice_pricing(world, enabled=False)
        return await settle(payment_id)

    with pytest.raises(UpgradeNoLongerPossible):
        await _upgrade(world, vm, settle=withdrawn_then_settle)
    assert await _cpu(world, vm) == 2
    async with shop.factory() as uow:
        assert (await uow.credit_ledger.balances(ALICE)) == {"EUR": 100_000}


async def test_an_upgrade_paid_after_its_vms_plan_was_repriced_becomes_credit(
    world: World,
) -> None:
    """The discount side: the VM's own plan is re-priced after the quote."""
    vm = await world.paid_vm()
    upgrade = await _upgrade(world, vm)
    shop = world.shop
    await update_cost_plan(shop.factory, PLAN, {"amount": 2 * PLAN_EUR_CENTS}, clock=shop.clock)

    await world.complete(upgrade)
    await world.run_jobs()

    why = await _assert_credited(world, vm, upgrade)
    assert "in force are EUR 2.64 per 1 month as it is" in why
    await _assert_told(world, vm, why)


async def test_an_upgrade_paid_after_its_price_fell_is_credited_whole(world: World) -> None:
    """The rule is "another charge", cheaper too: the payment is booked one way, so the
    payer gets all of it back as credit and quotes again at the lower price."""
    vm = await world.paid_vm()
    upgrade = await _upgrade(world, vm)
    await _reprice_pricing(world, cpu_cost=150)

    await world.complete(upgrade)

    await _assert_credited(world, vm, upgrade)


async def test_an_upgrade_repriced_into_another_currency_is_credited_in_its_own(
    world: World,
) -> None:
    """A card upgrade charged in EUR, paid after its pricing moved to USD: its value is EUR
    credit, the currency it was quoted and charged in and its subscription's."""
    vm = await world.paid_vm()
    upgrade = await _upgrade(world, vm, method=PaymentMethod.REVOLUT)
    assert upgrade.currency == "EUR" and upgrade.amount > 0
    await _reprice_pricing(world, currency="USD")

    await world.complete(upgrade)

    assert await _cpu(world, vm) == 2
    async with world.shop.factory() as uow:
        balances = await uow.credit_ledger.balances(ALICE)
    assert balances == {"EUR": upgrade.amount}
    assert await _overpayments(world, upgrade) == [upgrade.amount]


async def test_an_outdated_upgrade_whose_pricing_moved_currency_is_credited_in_its_own(
    world: World,
) -> None:
    """Its expiry moved too (judged first): the value is still credited in the currency it
    was quoted and charged in (its subscription's), not in the one its pricing lists now."""
    vm = await world.paid_vm()
    upgrade = await _upgrade(world, vm, method=PaymentMethod.REVOLUT)
    await world.complete(await world.renew(vm))  # the expiry moves
    await _reprice_pricing(world, currency="USD")

    await world.complete(upgrade)

    assert await _cpu(world, vm) == 2
    async with world.shop.factory() as uow:
        balances = await uow.credit_ledger.balances(ALICE)
    assert balances == {"EUR": upgrade.amount}
    paid = await world.shop.payment(upgrade.id)
    assert "was priced to the expiry" in payment_meta(paid)[CREDIT_KEY]["changes"][0]


async def _set_plan_amount(world: World, amount: int) -> None:
    """The plan's price changed in storage alone: no re-pricing expired anything."""
    async with world.shop.factory() as uow:
        plan = await uow.cost_plans.get(PLAN)
        assert plan is not None
        await uow.cost_plans.update(attrs.evolve(plan, amount=amount))
        await uow.commit()


async def test_a_price_change_its_charge_does_not_see_applies_the_upgrade(
    world: World,
) -> None:
    """A cent more on the plan, 14 hours before the expiry: the discount grows by a fraction
    of a msat per second left, too little to move the charge's whole sats, so the charge
    stays as quoted and the upgrade is applied."""
    vm = await world.paid_vm()
    world.advance(timedelta(days=27, hours=10))
    upgrade = await _upgrade(world, vm)
    expires = quoted_expiry(upgrade.metadata)
    assert expires is not None

    def charge(plan_cents: int) -> Money:
        old = Money(Currency.EUR, plan_cents)
        new = Money(Currency.EUR, 4200)  # 4 CPUs, 2 GiB, 64 GiB of the pricing
        quote = upgrade_quote(
            old, MONTHLY, new, expires, upgrade.created, PaymentMethod.LIGHTNING, rates
        )
        return quote.upgrade.money

    rates = await world.shop.rates.table()
    assert (
        charge(PLAN_EUR_CENTS + 1) == charge(PLAN_EUR_CENTS) == Money(Currency.BTC, upgrade.amount)
    )
    await _set_plan_amount(world, PLAN_EUR_CENTS + 1)

    await world.complete(upgrade)

    await _assert_applied(world, vm, upgrade)


async def test_an_upgrade_row_without_its_prices_is_applied_as_before(world: World) -> None:
    """Upgrades quoted before the prices were stored are not judged on them."""
    vm = await world.paid_vm()
    upgrade = await _upgrade(world, vm)
    async with world.shop.factory() as uow:
        meta = {k: v for k, v in payment_meta(upgrade).items() if k != QUOTED_PRICES_KEY}
        await uow.payments.update(attrs.evolve(upgrade, metadata=meta))
        await uow.commit()
    await _set_plan_amount(world, 2 * PLAN_EUR_CENTS)

    await world.complete(upgrade)

    await _assert_applied(world, vm, upgrade)


async def test_a_covered_upgrade_repriced_since_its_quote_charges_nothing(
    world: World,
) -> None:
    """Paid from account credit alone, an upgrade is booked right after its quote; a
    re-pricing in between leaves nothing booked (409), its credit given back once."""
    shop = world.shop
    vm = await world.paid_vm()
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=ALICE,
        user_id=ALICE,
        currency="EUR",
        amount=10_000,
        note="test",
    )
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    taken: list[bytes] = []

    async def repriced_then_settle(payment_id: bytes) -> object:
        taken.append(payment_id)
        await _set_plan_amount(world, 2 * PLAN_EUR_CENTS)  # no sweep: the race's worst case
        return await settle(payment_id)

    with pytest.raises(UpgradeRepriced) as refused:
        await _upgrade(world, vm, method=PaymentMethod.REVOLUT, settle=repriced_then_settle)

    assert refused.value.kind == "conflict"
    [payment_id] = taken
    withdrawn = await shop.payment(payment_id)
    assert not withdrawn.is_paid and withdrawn.expires <= world.now
    spent = payment_meta(withdrawn)["credit_applied"]["amount"]
    assert spent > 0
    async with shop.factory() as uow:
        entries = await uow.credit_ledger.list_by_reference(payment_id.hex())
        balances = await uow.credit_ledger.balances(ALICE)
        assert await uow.invoices.get_by_payment(payment_id) is None
    assert sorted((e.reason, e.amount) for e in entries) == sorted(
        [(CreditReason.SPENT, -spent), (CreditReason.RELEASED, spent)]
    )
    assert balances == {"EUR": 10_000}
    world.advance(timedelta(hours=1))
    assert await release_expired_credit(shop.factory, shop.clock) == 0  # given back once
    assert await _cpu(world, vm) == 2


async def test_a_covered_upgrade_at_unchanged_prices_is_applied(world: World) -> None:
    shop = world.shop
    vm = await world.paid_vm()
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=ALICE,
        user_id=ALICE,
        currency="EUR",
        amount=10_000,
        note="test",
    )
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)

    paid = await _upgrade(world, vm, method=PaymentMethod.REVOLUT, settle=settle)

    assert paid.is_paid and await _cpu(world, vm) == 4


async def test_a_paid_upgrade_is_planned_once_to_judge_and_once_to_apply(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its booking planned it again for each reason it might not be applied (four plans in all)."""
    vm = await world.paid_vm()
    upgrade = await _upgrade(world, vm)
    planned: list[object] = []
    plan = upgrades._plan

    async def counted(*args: Any) -> upgrades.UpgradePlan:
        planned.append(args)
        return await plan(*args)

    monkeypatch.setattr(upgrades, "_plan", counted)
    await world.complete(upgrade)

    await _assert_applied(world, vm, upgrade)
    assert len(planned) == 2
