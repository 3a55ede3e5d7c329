"""An upgrade priced in another currency than its subscription's, paid and not applied, is
credited in the subscription's currency, on memory, SQLite and MariaDB.

The subscription's renewals spend credit in its currency only. The value of an upgrade priced
in its custom pricing's other currency (USD on a EUR subscription) was credited in that
currency, a balance nothing of the subscription renews from. It is converted at the quote's
own BTC rates, exactly, rounded down once (a card's note says at which rates); a quote that
stored no rates cannot be valued: nothing is booked and the payer and the admins are told.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs

from app.billing.credit_balance import adjust_credit
from app.billing.credit_settle import completion_settle
from domain.account_credit import CreditReason
from domain.credit import payment_meta
from domain.enums import PaymentMethod
from domain.model import SubscriptionPayment, Vm
from domain.money import Currency
from domain.price_basis import CREDIT_KEY, RATES_KEY
from domain.upgrade import UpgradeConfig
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.fakes import FreshRates
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world

BIGGER = UpgradeConfig(new_cpu=4)  # the template VM (EUR plan) has 2 CPUs
#: USD at 80 000 per BTC beside EUR at 100 000: USD 1.00 is worth EUR 1.25
USD_PER_BTC = Decimal(80_000)
EUR_PER_BTC = 100_000


async def _usd_custom_pricing(world: World) -> None:
    """USD at its own rate, and the region's custom pricing (what the EUR plan's VM is
    upgraded to) priced in USD: the subscription stays in EUR."""
    world.shop = attrs.evolve(
        world.shop, rates=FreshRates(world.clock, others={Currency.USD: USD_PER_BTC})
    )
    async with world.shop.factory() as uow:
        [pricing] = await uow.custom_pricing.list_by_region(1)
        await uow.custom_pricing.update(attrs.evolve(pricing, currency="USD"))
        await uow.commit()


async def _outdated_upgrade(world: World, method: PaymentMethod) -> tuple[Vm, SubscriptionPayment]:
    """A paid EUR VM, an upgrade of it into the USD pricing quoted by `method`, then a
    renewal paid first (the upgrade's price ran to the old expiry: it is not applied)."""
    vm = await world.paid_vm()
    await _usd_custom_pricing(world)
    upgrade = await upgrade_payment(world.shop, vm, BIGGER, method=method)
    await world.complete(await world.renew(vm))
    return vm, upgrade


async def _entries(world: World, payment: SubscriptionPayment) -> list[Any]:
    async with world.shop.factory() as uow:
        entries = await uow.credit_ledger.list_by_reference(payment.id.hex())
    return [e for e in entries if e.reason is CreditReason.OVERPAYMENT]


async def _balances(world: World) -> dict[str, int]:
    async with world.shop.factory() as uow:
        return await uow.credit_ledger.balances(ALICE)


def _floor(value: Fraction) -> int:
    return value.numerator // value.denominator


async def test_a_card_upgrade_in_usd_not_applied_is_eur_credit_its_renewal_spends(
    world: World,
) -> None:
    vm, upgrade = await _outdated_upgrade(world, PaymentMethod.REVOLUT)
    assert (upgrade.currency, (await world.sub(vm)).currency) == ("USD", "EUR")
    assert upgrade.amount > 0
    worth = _floor(Fraction(upgrade.amount * EUR_PER_BTC, 80_000))

    report = await world.complete(upgrade)

    assert report.completed
    [entry] = await _entries(world, upgrade)
    assert (entry.currency, entry.amount) == ("EUR", worth)
    assert entry.note.endswith(
        f"USD {Decimal(upgrade.amount) / 100:.2f} as EUR {Decimal(worth) / 100:.2f} "
        "at BTC/EUR 100000, BTC/USD 80000 (exact, rounded down)"
    )
    assert await _balances(world) == {"EUR": worth}
    assert (await world.complete(upgrade)).completed is False  # a replay books nothing more
    assert await _balances(world) == {"EUR": worth}

    # the subscription's next renewal spends it (EUR 1.63 of it: all the renewal costs)
    shop = world.shop
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    renewal = await shop.renew(vm, settle=settle, method=PaymentMethod.LIGHTNING)
    applied = payment_meta(renewal)["credit_applied"]
    assert (applied["currency"], applied["amount"]) == ("EUR", 163)
    assert renewal.amount == 0  # covered wholly by the credit
    assert await _balances(world) == {"EUR": worth - 163}


async def test_a_lightning_upgrade_in_usd_not_applied_is_eur_credit_at_its_eur_rate(
    world: World,
) -> None:
    """Its msat valued at the quote's EUR rate, rounded down (at the USD one it was USD
    credit); its invoice, in EUR, bills the same figure as a prepayment."""
    _, upgrade = await _outdated_upgrade(world, PaymentMethod.LIGHTNING)
    assert upgrade.currency == "BTC" and upgrade.rate == USD_PER_BTC
    worth = _floor(Fraction(upgrade.amount) * EUR_PER_BTC * 100 / 100_000_000_000)
    assert worth > 0

    await world.complete(upgrade)

    [entry] = await _entries(world, upgrade)
    assert (entry.currency, entry.amount) == ("EUR", worth)
    assert await _balances(world) == {"EUR": worth}
    async with world.shop.factory() as uow:
        invoice = await uow.invoices.get_by_payment(upgrade.id)
    assert invoice is not None and (invoice.currency, invoice.net) == ("EUR", worth)


async def test_a_card_upgrade_in_usd_whose_quote_stored_no_rates_is_not_credited(
    world: World,
) -> None:
    """No rate links USD to EUR: nothing is booked (no USD credit the subscription cannot
    spend, nor EUR at a guessed rate), and the payer and the admins are told so."""
    vm, upgrade = await _outdated_upgrade(world, PaymentMethod.REVOLUT)
    async with world.shop.factory() as uow:
        stored = await uow.payments.get(upgrade.id)
        assert stored is not None
        meta = {k: v for k, v in payment_meta(stored).items() if k != RATES_KEY}
        await uow.payments.update(attrs.evolve(stored, metadata=meta))
        await uow.commit()

    report = await world.complete(upgrade)

    assert report.completed
    assert await _entries(world, upgrade) == []
    assert await _balances(world) == {}
    paid = await world.shop.payment(upgrade.id)
    assert payment_meta(paid)[CREDIT_KEY]["mode"] == "unrestorable"
    await world.run_jobs()
    sub = await world.sub(vm)
    [told] = world.notifier.titled(f"[Subscription {sub.id}] Payment received but not credited")
    assert told.user_id == ALICE
    [admins] = world.notifier.titled(f"[Subscription {sub.id}] Upgrade paid but not applied")
    assert "NOT booked as account credit" in admins.message


async def test_usd_credit_an_upgrade_applied_comes_back_in_usd_its_money_as_eur(
    world: World,
) -> None:
    """An upgrade spends credit in the currency it is priced in: the USD credit it applied
    comes back as it was, in USD, as an entry of its own; its money is EUR credit."""
    vm = await world.paid_vm()
    await _usd_custom_pricing(world)
    shop = world.shop
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=ALICE,
        user_id=ALICE,
        currency="USD",
        amount=500,
        note="gift",
    )
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    upgrade = await upgrade_payment(shop, vm, BIGGER, method=PaymentMethod.REVOLUT, settle=settle)
    assert payment_meta(upgrade)["credit_applied"]["amount"] == 500
    assert upgrade.currency == "USD" and upgrade.amount > 0
    await world.complete(await world.renew(vm))  # the expiry moves: not applied
    worth = _floor(Fraction(upgrade.amount * EUR_PER_BTC, 80_000))

    await world.complete(upgrade)

    [value] = await _entries(world, upgrade)
    assert (value.currency, value.amount) == ("EUR", worth)
    async with world.shop.factory() as uow:
        [back] = await uow.credit_ledger.list_by_reference(upgrade.id.hex() + "/applied")
    assert (back.reason, back.currency, back.amount) == (CreditReason.RELEASED, "USD", 500)
    assert await _balances(world) == {"EUR": worth, "USD": 500}
