"""D23 at use-case level on memory, SQLite and MariaDB: a catalogue change that re-prices VMs
(a cost plan, a template's plan, a custom pricing or its disk rows) expires the pending
Purchase/Renewal quotes of exactly the subscriptions it prices, in its own transaction, and
cancels them at their provider; a change that moves no price expires nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from app.admin.cost_plans import update_cost_plan
from app.admin.custom_pricing import update_pricing
from app.admin.vm_templates import update_template
from app.billing.price_in_force import TIME_BUYING
from domain.intervals import add_months
from domain.model import Vm
from ports.storage import PricedBy
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import PLAN_EUR_CENTS, PRICING, TEMPLATE, Shop

database = storage_backends.database  # module fixture: memory, SQLite, MariaDB
shop = lifecycle_world.shop

PLAN = 1  # the shop's template's cost plan


async def _pending(shop: Shop, vm: Vm) -> list[bytes]:
    sub = await shop.subscription(vm)
    async with shop.factory() as uow:
        rows = await uow.payments.list_pending_for_subscription(sub.id, shop.clock.now())
    return [p.id for p in rows]


async def _two_vms(shop: Shop) -> tuple[Vm, Vm, bytes, bytes]:
    """A paid standard VM and a paid custom VM, each with a pending renewal quote."""
    standard, custom = await shop.order(), await shop.order_custom()
    for vm in (standard, custom):
        await shop.complete(await shop.renew(vm))
    shop.clock.advance(timedelta(hours=1))
    a, b = await shop.renew(standard), await shop.renew(custom)
    return standard, custom, a.id, b.id


async def test_a_cost_plan_price_expires_its_vms_quotes_only(shop: Shop) -> None:
    standard, custom, a, b = await _two_vms(shop)
    kw: dict[str, Any] = {"clock": shop.clock, "rails": shop.rails}
    await update_cost_plan(shop.factory, PLAN, {"name": "renamed"}, **kw)
    assert await _pending(shop, standard) == [a]
    await update_cost_plan(shop.factory, PLAN, {"amount": 999}, **kw)
    assert await _pending(shop, standard) == []
    assert await _pending(shop, custom) == [b]
    assert (await shop.payment(a)).expires == shop.clock.now()
    assert shop.node.cancelled == [a]


async def test_a_template_plan_edit_expires_its_vms_quotes(shop: Shop) -> None:
    standard, custom, a, b = await _two_vms(shop)
    kw: dict[str, Any] = {"clock": shop.clock, "rails": shop.rails}
    await update_template(shop.factory, TEMPLATE, {"cost_plan_name": "same price"}, **kw)
    assert await _pending(shop, standard) == [a]
    await update_template(shop.factory, TEMPLATE, {"cost_plan_currency": "USD"}, **kw)
    assert await _pending(shop, standard) == []
    assert await _pending(shop, custom) == [b]


async def test_a_custom_pricing_change_expires_its_vms_quotes_only(shop: Shop) -> None:
    standard, custom, a, b = await _two_vms(shop)
    kw: dict[str, Any] = {"clock": shop.clock, "rails": shop.rails}
    await update_pricing(shop.factory, PRICING, {"name": "renamed", "enabled": True}, **kw)
    assert await _pending(shop, custom) == [b]
    async with shop.factory() as uow:
        disks = await uow.custom_pricing.list_disks(PRICING)
    same = [
        {
            "kind": d.kind,
            "interface": d.interface,
            "cost": d.cost,
            "min_disk_size": d.min_disk_size,
            "max_disk_size": d.max_disk_size,
        }
        for d in disks
    ]
    await update_pricing(shop.factory, PRICING, {"disk_pricing": same}, **kw)
    assert await _pending(shop, custom) == [b]  # the same disk prices, rows rewritten
    dearer = [{**same[0], "cost": same[0]["cost"] + 1}, *same[1:]]
    await update_pricing(shop.factory, PRICING, {"disk_pricing": dearer}, **kw)
    assert await _pending(shop, custom) == []
    assert await _pending(shop, standard) == [a]
    assert shop.node.cancelled == [b]


async def test_cpu_cost_change_expires_custom_quotes(shop: Shop) -> None:
    _, custom, _, b = await _two_vms(shop)
    await update_pricing(shop.factory, PRICING, {"cpu_cost": 300}, clock=shop.clock)
    assert await _pending(shop, custom) == []
    assert (await shop.payment(b)).expires == shop.clock.now()


async def test_the_lookup_finds_only_subscriptions_with_pending_quotes(shop: Shop) -> None:
    _, custom, a, _ = await _two_vms(shop)
    await shop.complete(await shop.payment(a))  # the standard VM's quote is paid
    now = shop.clock.now()
    async with shop.factory() as uow:
        pending_on = uow.subscriptions.ids_with_pending_on
        on_plan = await pending_on(now, TIME_BUYING, PricedBy(cost_plan_id=PLAN))
        on_tpl = await pending_on(now, TIME_BUYING, PricedBy(template_id=TEMPLATE))
        on_pricing = await pending_on(now, TIME_BUYING, PricedBy(custom_pricing_id=PRICING))
        nothing = await pending_on(now, TIME_BUYING, PricedBy())
    assert on_plan == on_tpl == [] and nothing == []
    assert on_pricing == [(await shop.subscription(custom)).id]


async def test_a_renewal_racing_a_plan_reprice_is_credited_at_one_price_or_the_other(
    shop: Shop,
) -> None:
    """A guard of the lock order (subscription before payments) under a real race: the code
    before passes it too, by crediting by value at completion."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    paid_until = (await shop.subscription(vm)).expires
    assert paid_until is not None
    shop.clock.advance(timedelta(hours=1))
    renewal = await shop.renew(vm)
    reprice = update_cost_plan(
        shop.factory, PLAN, {"amount": 2 * PLAN_EUR_CENTS}, clock=shop.clock, rails=shop.rails
    )
    await asyncio.gather(reprice, shop.complete(renewal))
    expires = (await shop.subscription(vm)).expires
    assert expires is not None
    at_old_price = add_months(paid_until, 1)
    # half an interval at 2 × price, on the grid of months from the subscription's creation
    # (31 Jan): half of 28 Feb → 31 Mar
    created = (await shop.subscription(vm)).created
    assert paid_until == add_months(created, 1)
    by_value = paid_until + (add_months(created, 2) - paid_until) / 2
    assert expires in (at_old_price, by_value)
    if (await shop.payment(renewal.id)).expires == shop.clock.now():
        assert expires == by_value  # the reprice came first and expired the quote
    assert (await shop.payment(renewal.id)).is_paid
