"""Concurrent renewals of one VM store one payment on memory, SQLite and MariaDB: the re-check
under the subscription lock finds the rival's payment and the extra invoices are cancelled."""

from __future__ import annotations

import asyncio

from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import Shop

database = storage_backends.database
shop = lifecycle_world.shop


async def test_concurrent_renewals_store_one_payment_per_interval_count(shop: Shop) -> None:
    vm = await shop.order()
    for intervals in (2, 3):
        racing = await asyncio.gather(*(shop.renew(vm, intervals=intervals) for _ in range(6)))
        assert len({p.id for p in racing}) == 1
    assert len(await shop.payments(vm)) == 2
    assert len(shop.node.invoices) > 2  # the requests did race
    assert len(shop.node.cancelled) == len(shop.node.invoices) - 2
    again = await shop.renew(vm, intervals=3)  # reused, no new invoice
    assert again.id == racing[0].id
