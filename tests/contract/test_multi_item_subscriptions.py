"""A VM's subscription that bills other line items too (an IP range beside the VM), on memory,
SQLite and MariaDB: upgrading the VM never re-bills the other items, a renewal taxes and fees
the whole amount once (D3, D4), and a card renewal after the VM's price moved to another
currency converts the other items into it instead of refusing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

import attrs
import pytest

from adapters.http.admin.views import line_items_json, one_line_item_json, subscriptions_json
from adapters.http.views_account import subscription_json
from app.billing.errors import UpgradeOfSharedSubscription, UpgradeWouldRebill
from app.billing.price_in_force import price_in_force
from app.billing.upgrades import create_upgrade_payment, quote_upgrade
from app.queries.subscriptions import get_subscription, list_subscriptions
from domain.credit import payment_meta
from domain.enums import IntervalType, PaymentMethod, SubscriptionPaymentType, SubscriptionType
from domain.enums import VmHistoryActionType as H
from domain.exchange import convert
from domain.intervals import MONTHLY, Interval
from domain.model import LineItem, SubscriptionPayment, Vm
from domain.money import Currency, Money
from domain.price_basis import CREDIT_KEY, PRICE_KEY, RATES_KEY, PriceBasis
from domain.upgrade import UpgradeConfig
from ports.storage import ShownItems
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import ALICE, PLAN_EUR_CENTS, PRICING
from tests.unit.worker.world import World

# pytest fixtures: one migrated database per backend for the module, emptied per test
database = storage_backends.database
world = lifecycle_world.world

PLAN = 1  # the world's template's cost plan
BIGGER = UpgradeConfig(new_cpu=4)  # the template VM has 2 CPUs
#: the custom price of the template's VM grown to 4 CPUs (4 × 2.00 + 2 GiB × 1.00 + 64 × 0.50)
UPGRADED_CENTS = 4200
YEARLY = Interval(IntervalType.YEAR, 1)
USD_PER_BTC = Decimal(110_000)  # EUR stays at 100 000


async def _plan(world: World, **fields: Any) -> None:
    """The world's cost plan changed in storage alone (before any order, or on purpose)."""
    async with world.shop.factory() as uow:
        plan = await uow.cost_plans.get(PLAN)
        assert plan is not None
        await uow.cost_plans.update(attrs.evolve(plan, **fields))
        await uow.commit()


async def _pricing_in(world: World, currency: str) -> None:
    async with world.shop.factory() as uow:
        pricing = await uow.custom_pricing.get(PRICING)
        assert pricing is not None
        await uow.custom_pricing.update(attrs.evolve(pricing, currency=currency))
        await uow.commit()


async def _add_ip_range(world: World, vm: Vm, amount: int) -> LineItem:
    """An IP range billed on the VM's subscription at `amount` per interval, in the
    subscription's currency."""
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        # the port adds line items only with their subscription; both stores' repos can
        added = await cast(Any, uow.line_items).add(
            LineItem(
                id=0,
                subscription_id=sub.id,
                subscription_type=SubscriptionType.IP_RANGE,
                name="203.0.113.8/29",
                amount=amount,
            )
        )
        await uow.commit()
    return cast(LineItem, added)


async def _second_vm_on(world: World, vm: Vm) -> Vm:
    """Another paid VM of the same user, its line item moved onto `vm`'s subscription (the
    ports add line items only with their subscription, and move them by an update)."""
    other = await world.paid_vm()
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        item = await uow.line_items.get(other.subscription_line_item_id)
        assert item is not None
        await uow.line_items.update(attrs.evolve(item, subscription_id=sub.id))
        await uow.commit()
    return other


async def _item(world: World, item_id: int) -> LineItem:
    async with world.shop.factory() as uow:
        found = await uow.line_items.get(item_id)
    assert found is not None
    return found


async def _upgrade(world: World, vm: Vm) -> SubscriptionPayment:
    shop = world.shop
    return await create_upgrade_payment(
        shop.factory, shop.clock, shop.rails, shop.rates, user_id=ALICE, vm_id=vm.id, cfg=BIGGER
    )


async def _quote(world: World, vm: Vm) -> Any:
    shop = world.shop
    return await quote_upgrade(
        shop.factory, shop.clock, shop.rates, user_id=ALICE, vm_id=vm.id, cfg=BIGGER
    )


async def _card_renewal(world: World, vm: Vm) -> SubscriptionPayment:
    return await world.shop.renew(vm, method=PaymentMethod.REVOLUT)


# --- 1. an upgrade never re-bills the other items -------------------------------------------


async def test_an_upgrade_that_would_bill_the_ip_range_monthly_is_refused(world: World) -> None:
    """A VM on a yearly plan (EUR 12.00 a year) with an IP range at EUR 6.00 a year beside
    it. Converting the VM to custom pricing bills the subscription monthly: the range's
    EUR 6.00 would then be charged every month (EUR 72.00 a year). The amount cannot be
    rescaled exactly in general (a day is no fixed part of a month), so the quote and the
    order are refused (422) and nothing changes."""
    await _plan(world, amount=1200, interval_type=IntervalType.YEAR, interval_amount=1)
    vm = await world.paid_vm()
    item = await _add_ip_range(world, vm, 600)
    sub = await world.sub(vm)
    shop = world.shop
    with pytest.raises(UpgradeWouldRebill) as quoted:
        await quote_upgrade(
            shop.factory, shop.clock, shop.rates, user_id=ALICE, vm_id=vm.id, cfg=BIGGER
        )
    assert quoted.value.kind == "unprocessable"
    assert "1 year" in quoted.value.message and "monthly" in quoted.value.message
    with pytest.raises(UpgradeWouldRebill):
        await _upgrade(world, vm)
    assert await world.sub(vm) == sub
    assert await _item(world, item.id) == item
    assert (await shop.vm(vm.id)).template_id == vm.template_id
    assert len(await shop.payments(vm)) == 1  # the first month only


async def test_an_upgrade_paid_after_a_range_joined_a_yearly_subscription_becomes_credit(
    world: World,
) -> None:
    """The upgrade was quoted while the VM billed alone; an IP range joined its yearly
    subscription before the invoice was paid. Applying it would bill the range monthly, so
    it is booked, not applied: its value becomes EUR credit once, the subscription keeps
    its yearly interval and the range its price."""
    await _plan(world, amount=1200, interval_type=IntervalType.YEAR, interval_amount=1)
    vm = await world.paid_vm()
    upgrade = await _upgrade(world, vm)
    item = await _add_ip_range(world, vm, 600)
    before = await world.sub(vm)

    assert (await world.complete(upgrade)).completed
    after = await world.sub(vm)
    assert after.interval == YEARLY and after.currency == "EUR"
    assert after.expires == before.expires
    assert await _item(world, item.id) == item
    assert (await world.shop.vm(vm.id)).template_id == vm.template_id
    assert await world.history(vm, H.CONFIGURATION_CHANGED) == []
    paid = await world.shop.payment(upgrade.id)
    [why] = payment_meta(paid)[CREDIT_KEY]["changes"]
    assert "can no longer be made" in why and "1 year" in why
    async with world.shop.factory() as uow:
        balances = await uow.credit_ledger.balances(ALICE)
    assert set(balances) == {"EUR"} and balances["EUR"] > 0
    assert (await world.complete(upgrade)).completed is False  # booked once


async def test_a_monthly_vm_upgrade_keeps_the_range_price_and_currency(world: World) -> None:
    """The VM bills monthly in EUR with an IP range at EUR 6.00 a month; the custom pricing
    it grows into is in USD. The upgrade changes no interval, so it is applied, but the
    subscription keeps EUR, the range's currency: relabelling it USD would turn EUR 6.00
    into USD 6.00 without touching the item. The next card renewal charges the VM in USD
    and the range's EUR 6.00 converted at the quote's rates."""
    await _pricing_in(world, "USD")
    world.shop.rates.others[Currency.USD] = USD_PER_BTC
    vm = await world.paid_vm()
    item = await _add_ip_range(world, vm, 600)

    assert (await world.complete(await _upgrade(world, vm))).completed
    sub = await world.sub(vm)
    assert sub.currency == "EUR" and sub.interval == MONTHLY
    assert await _item(world, item.id) == item
    assert len(await world.history(vm, H.CONFIGURATION_CHANGED)) == 1

    renewal = await _card_renewal(world, vm)
    range_usd = convert(
        Money(Currency.EUR, 600), Currency.USD, await world.shop.rates.table(), world.now
    )
    assert range_usd == Money(Currency.USD, 660)
    assert (renewal.currency, renewal.amount) == ("USD", UPGRADED_CENTS + 660)


async def test_a_single_vm_upgrade_still_moves_its_subscription_to_the_pricing(
    world: World,
) -> None:
    """Alone on its subscription, the VM's upgrade moves the subscription to the custom
    pricing's currency and to monthly billing: nothing else is billed by it."""
    await _pricing_in(world, "USD")
    await _plan(world, amount=1200, interval_type=IntervalType.YEAR, interval_amount=1)
    vm = await world.paid_vm()
    assert (await world.sub(vm)).interval == YEARLY
    assert (await world.complete(await _upgrade(world, vm))).completed
    sub = await world.sub(vm)
    assert sub.currency == "USD" and sub.interval == MONTHLY


async def test_a_free_item_does_not_stop_a_yearly_vm_upgrade(world: World) -> None:
    """An item billed at EUR 0.00 a year costs EUR 0.00 a month too: moving the subscription
    to monthly billing re-bills nothing, so the yearly VM's upgrade is quoted and applied.
    The item keeps its amount, and the next renewal charges the VM's new monthly price
    alone."""
    await _plan(world, amount=1200, interval_type=IntervalType.YEAR, interval_amount=1)
    vm = await world.paid_vm()
    item = await _add_ip_range(world, vm, 0)

    assert (await _quote(world, vm)).upgrade.money.amount > 0
    assert (await world.complete(await _upgrade(world, vm))).completed
    sub = await world.sub(vm)
    assert sub.interval == MONTHLY and sub.currency == "EUR"
    assert await _item(world, item.id) == item
    assert len(await world.history(vm, H.CONFIGURATION_CHANGED)) == 1
    renewal = await _card_renewal(world, vm)
    assert (renewal.currency, renewal.amount) == ("EUR", UPGRADED_CENTS)


async def test_a_paid_item_beside_a_free_one_still_stops_it(world: World) -> None:
    """Only the items that would be charged monthly count: one at EUR 6.00 a year beside a
    free one is refused as before, and its message counts the one that would be re-billed."""
    await _plan(world, amount=1200, interval_type=IntervalType.YEAR, interval_amount=1)
    vm = await world.paid_vm()
    await _add_ip_range(world, vm, 0)
    await _add_ip_range(world, vm, 600)
    with pytest.raises(UpgradeWouldRebill, match="also bills 1 other item"):
        await _quote(world, vm)
    with pytest.raises(UpgradeWouldRebill):
        await _upgrade(world, vm)


async def test_an_upgrade_of_a_vm_sharing_its_subscription_with_another_vm_is_refused(
    world: World,
) -> None:
    """Two VMs billed by one (monthly) subscription. A paid upgrade is booked on the
    subscription, and its records would grow every VM it bills, so one upgrade paid would
    upgrade both (and be judged on the lower-id VM only): refused for either VM (422),
    nothing asked of a rail, nothing changed."""
    vm = await world.paid_vm()
    other = await _second_vm_on(world, vm)
    sub = await world.sub(vm)
    invoices = len(world.shop.node.invoices)
    for target in (vm, other):
        with pytest.raises(UpgradeOfSharedSubscription, match="1 other VM") as refused:
            await _quote(world, target)
        assert refused.value.kind == "unprocessable"
        with pytest.raises(UpgradeOfSharedSubscription):
            await _upgrade(world, target)
    assert len(world.shop.node.invoices) == invoices
    assert await world.sub(vm) == sub
    for target in (vm, other):
        assert (await world.shop.vm(target.id)).template_id == target.template_id


async def test_an_upgrade_paid_after_a_second_vm_joined_becomes_credit(world: World) -> None:
    """Quoted while the VM billed alone, paid after another VM joined its subscription: it
    is booked as credit, and neither VM grows (applied, it would have grown both)."""
    vm = await world.paid_vm()
    upgrade = await _upgrade(world, vm)
    other = await _second_vm_on(world, vm)

    assert (await world.complete(upgrade)).completed
    for target in (vm, other):
        after = await world.shop.vm(target.id)
        assert (after.template_id, after.custom_template_id) == (target.template_id, None)
        assert await world.history(target, H.CONFIGURATION_CHANGED) == []
    [why] = payment_meta(await world.shop.payment(upgrade.id))[CREDIT_KEY]["changes"]
    assert "can no longer be made" in why and "1 other VM" in why
    async with world.shop.factory() as uow:
        balances = await uow.credit_ledger.balances(ALICE)
    assert set(balances) == {"EUR"} and balances["EUR"] > 0


# --- 2. tax and fee on the whole amount ------------------------------------------------------


async def test_a_card_renewal_taxes_and_fees_the_vm_and_the_range_once(world: World) -> None:
    """VM EUR 1.32 and range EUR 10.03 a month, 23 % VAT (IE), card fee 2.8 % + EUR 0.20.
    D3 taxes the charged amount: floor(1135 × 0.23) = floor(261.05) = 261 (taxing each part
    and adding gives floor(30.36) + floor(230.69) = 260). D4 grosses up once with one base
    fee: ceil(1135 × 2.8 / 97.2) + ceil(20 / 0.972) = 33 + 21 = 54 (each part with its own
    base fee: 4 + 21 + 29 + 21 = 75)."""
    vm = await world.paid_vm()
    await _add_ip_range(world, vm, 1003)
    renewal = await _card_renewal(world, vm)
    assert (renewal.currency, renewal.amount) == ("EUR", PLAN_EUR_CENTS + 1003)
    assert renewal.tax == 261
    assert renewal.processing_fee == 54


# --- 3. a VM priced in another currency than the subscription's other items -----------------


async def test_a_card_renewal_after_the_plan_moved_to_usd_converts_the_range(
    world: World,
) -> None:
    """The plan moved from EUR to USD after the VM was sold; its subscription (EUR) bills an
    IP range at EUR 6.00. As for a VM alone on its subscription, the card charges the VM's
    price currency (USD); the range's EUR 6.00 is converted at the quote's rates (EUR
    100 000 and USD 110 000 per BTC: USD 6.60), which the quote records. Paying it buys
    exactly one month."""
    vm = await world.paid_vm()
    await _add_ip_range(world, vm, 600)
    await _plan(world, currency="USD")
    world.shop.rates.others[Currency.USD] = USD_PER_BTC
    sub = await world.sub(vm)
    assert sub.currency == "EUR"

    renewal = await _card_renewal(world, vm)
    assert (renewal.currency, renewal.amount) == ("USD", PLAN_EUR_CENTS + 660)
    # 23 % of 7.92 floored; the EUR 0.20 base fee is USD 0.22: ceil(792 × 2.8 / 97.2) = 23
    # and ceil(22 / 0.972) = 23
    assert (renewal.tax, renewal.processing_fee) == (182, 46)
    rates = payment_meta(renewal)[RATES_KEY]
    assert Decimal(rates["EUR"]) == 100_000 and Decimal(rates["USD"]) == USD_PER_BTC

    assert (await world.complete(renewal)).completed
    after = await world.sub(vm)
    assert sub.expires is not None
    assert after.expires == MONTHLY.add_to(sub.expires)
    assert CREDIT_KEY not in payment_meta(await world.shop.payment(renewal.id))
    async with world.shop.factory() as uow:
        basis = await price_in_force(uow, after, purchase=False)
    assert basis.interval == MONTHLY


async def test_a_lightning_renewal_after_the_plan_moved_to_usd_still_works(
    world: World,
) -> None:
    """The same subscription by Lightning: each part converted to whole sats, as before."""
    vm = await world.paid_vm()
    await _add_ip_range(world, vm, 600)
    await _plan(world, currency="USD")
    world.shop.rates.others[Currency.USD] = USD_PER_BTC
    renewal = await world.renew(vm)
    # USD 1.32 at 110 000: 1 200 000 msat; EUR 6.00 at 100 000: 6 000 000 msat
    assert (renewal.currency, renewal.amount) == ("BTC", 1_200_000 + 6_000_000)
    assert (await world.complete(renewal)).completed


async def test_the_expiring_soon_notice_shows_the_upgraded_vm_in_its_pricings_currency(
    world: World,
) -> None:
    """After the upgrade the VM's line item is USD 42.00 (its pricing's) and the range EUR
    6.00 (the subscription's): the notice listed the VM as EUR 42.00."""
    await _pricing_in(world, "USD")
    world.shop.rates.others[Currency.USD] = USD_PER_BTC
    vm = await world.paid_vm()
    await _add_ip_range(world, vm, 600)
    assert (await world.complete(await _upgrade(world, vm))).completed
    sub = await world.sub(vm)
    assert sub.expires is not None and sub.currency == "EUR"

    world.at(sub.expires - timedelta(hours=12))
    await world.lifecycle()

    [notice] = world.notifier.titled(f"[Sub #{sub.id}] Expiring Soon")
    vm_item = await _item(world, vm.subscription_line_item_id)
    assert f"- {vm_item.name} — USD 42.00 per month" in notice.message
    assert "- 203.0.113.8/29 — EUR 6.00 per month" in notice.message


async def test_the_api_shows_the_upgraded_vm_item_in_its_pricings_currency(world: World) -> None:
    """After the upgrade the VM's line item amount is USD 42.00 (its pricing's), the range's
    EUR 6.00 (the subscription's): the user API labelled both EUR (`price`), as did the
    admin views (the subscription's `currency` alone). Same keys, each item's currency; the
    setup fees stay in the subscription's currency (D23: what a Purchase charges them in)."""
    await _pricing_in(world, "USD")
    world.shop.rates.others[Currency.USD] = USD_PER_BTC
    vm = await world.paid_vm()
    ip = await _add_ip_range(world, vm, 600)
    assert (await world.complete(await _upgrade(world, vm))).completed
    sub = await world.sub(vm)
    assert sub.currency == "EUR"
    item_id = vm.subscription_line_item_id

    async with world.shop.factory() as uow:
        shown = await uow.line_items.list_shown([sub.id])
        assert [i.id for i in shown.items[sub.id]] == sorted([item_id, ip.id])
        assert shown.currencies == {item_id: "USD"}  # the range: the subscription's
        one = await get_subscription(uow, sub.id, sub.user_id)
        page = await list_subscriptions(uow, sub.user_id, 10, 0)
        admin = await subscriptions_json(uow, [sub])
        admin_items = await line_items_json(uow, sub)
        vm_item = await uow.line_items.get(item_id)
        assert vm_item is not None
        admin_one = await one_line_item_json(uow, vm_item)

    for view in (one, *page.items):
        prices = {i["id"]: i["price"] for i in subscription_json(view)["line_items"]}
        assert prices == {
            item_id: {"currency": "USD", "amount": UPGRADED_CENTS},
            ip.id: {"currency": "EUR", "amount": 600},
        }
        fees = {i["setup_fee"]["currency"] for i in subscription_json(view)["line_items"]}
        assert fees == {"EUR"}
    for items in (admin[0]["line_items"], admin_items):
        assert {i["id"]: (i["currency"], i["amount"]) for i in items} == {
            item_id: ("USD", UPGRADED_CENTS),
            ip.id: ("EUR", 600),
        }
    assert (admin_one["currency"], admin_one["amount"]) == ("USD", UPGRADED_CENTS)


async def test_a_standard_vm_item_is_shown_in_its_subscriptions_currency(world: World) -> None:
    """A standard VM's amount was written in its subscription's currency: nothing else."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        shown = await uow.line_items.list_shown([sub.id, sub.id + 1000])
        view = await get_subscription(uow, sub.id, sub.user_id)
        assert await uow.line_items.list_shown([]) == ShownItems({}, {})
    assert shown.currencies == {}
    assert [i.id for i in shown.items[sub.id]] == [vm.subscription_line_item_id]
    [item] = subscription_json(view)["line_items"]
    assert item["price"]["currency"] == sub.currency == "EUR"


async def test_a_vm_items_setup_fee_is_charged_in_the_subscriptions_currency(
    world: World,
) -> None:
    """A VM item's setup fee is a number in its subscription's currency, as every item's
    (docs/decisions.md: an admin's price edit records it so; orders and the legacy migration
    write 0, upgrades leave it): the quote and its price basis (D23) agree. A VM ordered
    in EUR, given an EUR 5.00 setup fee, its plan moved to USD before the first payment:
    the Purchase by card charges the plan's USD 1.32 and the fee converted at the quote's
    rates (EUR 100 000, USD 110 000 per BTC: USD 5.50), its basis records EUR 5.00, and
    paying it buys exactly one month (no part counted as credit)."""
    vm = await world.shop.order()
    item = await _item(world, vm.subscription_line_item_id)
    async with world.shop.factory() as uow:
        await uow.line_items.update(attrs.evolve(item, setup_amount=500))
        await uow.commit()
    await _plan(world, currency="USD")
    world.shop.rates.others[Currency.USD] = USD_PER_BTC
    sub = await world.sub(vm)
    assert (sub.currency, sub.is_setup) == ("EUR", False)

    purchase = await _card_renewal(world, vm)
    assert purchase.payment_type is SubscriptionPaymentType.PURCHASE
    assert (purchase.currency, purchase.amount) == ("USD", PLAN_EUR_CENTS + 550)
    basis = PriceBasis.from_json(payment_meta(purchase)[PRICE_KEY])
    assert basis is not None
    assert basis.recurring == ((Currency.USD, PLAN_EUR_CENTS),)
    assert basis.setup == ((Currency.EUR, 500),)

    assert (await world.complete(purchase)).completed
    after = await world.sub(vm)
    assert after.is_setup and after.expires is not None
    assert CREDIT_KEY not in payment_meta(await world.shop.payment(purchase.id))
    async with world.shop.factory() as uow:
        now = await price_in_force(uow, after, purchase=True)
    assert now.same_price(basis)  # the D23 check: nothing changed


async def test_an_upgrade_keeps_the_currency_of_a_setup_fee_still_to_be_paid(
    world: World,
) -> None:
    """A VM alone on its EUR subscription, with paid time but not set up (a migrated VM
    given time without a paid payment, D18), its item's setup fee EUR 5.00 still owed,
    upgraded into a USD pricing: the subscription moved to USD and the fee, a number, was
    read as USD 5.00, so the next Purchase charged USD 5.00 where EUR 5.00 is USD 5.50 at
    the quote's rates (EUR 100 000, USD 110 000 per BTC). The subscription keeps its
    currency while it owes a setup fee, as it does for other items' amounts."""
    await _pricing_in(world, "USD")
    world.shop.rates.others[Currency.USD] = USD_PER_BTC
    vm = await world.paid_vm()
    item = await _item(world, vm.subscription_line_item_id)
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        await uow.line_items.update(attrs.evolve(item, setup_amount=500))
        await uow.subscriptions.update(attrs.evolve(sub, is_setup=False))
        await uow.commit()
    assert (await world.complete(await _upgrade(world, vm))).completed
    after = await world.sub(vm)
    assert (after.currency, after.is_setup) == ("EUR", False)

    purchase = await _card_renewal(world, vm)
    assert purchase.payment_type is SubscriptionPaymentType.PURCHASE
    assert (purchase.currency, purchase.amount) == ("USD", UPGRADED_CENTS + 550)
    basis = PriceBasis.from_json(payment_meta(purchase)[PRICE_KEY])
    assert basis is not None and basis.setup == ((Currency.EUR, 500),)
