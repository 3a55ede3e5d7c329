"""D23 under concurrency on memory, SQLite and MariaDB: invoices completed together add the
exact calendar sum once each (D9), and a renewal racing a price change is credited either
at the old price (it completed first) or by value at the new one, never anything else
(that race test also passes on the code before D23: it guards the race, not the bug)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from domain.intervals import add_months
from domain.model import SubscriptionPayment, Vm
from domain.upgrade import UpgradeConfig
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import Shop

database = storage_backends.database  # module fixture: memory, SQLite, MariaDB
shop = lifecycle_world.shop

FEB_28 = datetime(2026, 2, 28, 12, tzinfo=UTC)


async def _paid_tiny(shop: Shop) -> Vm:
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    assert (await shop.subscription(vm)).expires == FEB_28
    return vm


async def test_monthly_invoices_completed_concurrently_and_twice_add_the_calendar_sum(
    shop: Shop,
) -> None:
    vm = await _paid_tiny(shop)
    invoices: list[SubscriptionPayment] = []
    for _ in range(12):
        invoices.append(await shop.renew(vm))
        shop.clock.advance(timedelta(minutes=11))
    reports = await asyncio.gather(*(shop.complete(p) for p in invoices * 2))
    assert sum(r.completed for r in reports) == 12
    assert (await shop.subscription(vm)).expires == add_months(FEB_28, 12)
    seconds = [(await shop.payment(p.id)).time_value for p in invoices]
    assert sum(s or 0 for s in seconds) == (add_months(FEB_28, 12) - FEB_28).total_seconds()


async def test_a_renewal_racing_an_upgrade_is_credited_at_one_price_or_the_other(
    shop: Shop,
) -> None:
    vm = await _paid_tiny(shop)
    shop.clock.advance(timedelta(days=1))
    renewal = await shop.renew(vm, intervals=12)
    # 8 × 200 + 2 × 100 + 64 × 50 = EUR 50.00 a month
    upgrade = await upgrade_payment(shop, vm, UpgradeConfig(new_cpu=8))
    reports = await asyncio.gather(shop.complete(upgrade), shop.complete(renewal))
    assert all(r.completed for r in reports)
    expires = (await shop.subscription(vm)).expires
    at_old_price = add_months(FEB_28, 12)
    # 12 × EUR 1.32 = EUR 15.84 at EUR 50.00: 0.3168 of 28 Feb → 31 Mar (the month cell of
    # the subscription's grid, counted from its creation on 31 Jan), floored
    by_value = FEB_28 + timedelta(seconds=31 * 86_400 * 1584 // 5000)
    assert expires in (at_old_price, by_value)
    if (await shop.payment(renewal.id)).expires == shop.clock.now():
        assert expires == by_value  # the price change came first and expired the quote
    assert (await shop.payment(renewal.id)).time_value == (expires - FEB_28).total_seconds()
