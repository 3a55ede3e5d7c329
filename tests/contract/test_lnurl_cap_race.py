"""A VM's cap of live LNURL invoices holds under concurrent callbacks, on memory, SQLite and
MariaDB: the count is taken again under the subscription's lock just before storing (D25)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from app.billing.errors import TooManyOpenInvoices
from app.billing.lnurl import (
    LNURL_MAX_LIVE_INVOICES,
    LNURL_MAX_LIVE_PER_CLIENT,
    renew_by_amount,
)
from app.billing.persist import is_lnurl_payment
from app.billing.rails import PricedPayment
from domain.model import SubscriptionPayment, Vm
from tests.contract import lifecycle_world, storage_backends
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world_with_rails()


async def _by_amount(world: World, vm: Vm, msat: int, client: str) -> SubscriptionPayment:
    shop = world.shop
    return await renew_by_amount(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        vm_id=vm.id,
        amount_msat=msat,
        client=client,
    )


async def _live(world: World, vm: Vm) -> int:
    now = world.shop.clock.now()
    return sum(
        1 for p in await world.shop.payments(vm) if is_lnurl_payment(p) and p.is_pending(now)
    )


async def test_two_concurrent_callbacks_cannot_pass_the_vms_cap_together(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = world.shop
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    for i in range(LNURL_MAX_LIVE_INVOICES - 1):  # one short of the cap, from many clients
        await _by_amount(
            world, vm, 100_000 * (i + 1), f"198.51.100.{i // LNURL_MAX_LIVE_PER_CLIENT}"
        )
    assert await _live(world, vm) == LNURL_MAX_LIVE_INVOICES - 1

    # both callbacks have passed the first count before either makes its invoice and stores it
    made = asyncio.Barrier(2)
    create = shop.rails.create

    async def create_together(priced: PricedPayment, now: datetime) -> SubscriptionPayment:
        await made.wait()
        return await create(priced, now)

    monkeypatch.setattr(shop.rails, "create", create_together)
    results = await asyncio.gather(
        _by_amount(world, vm, 90_000_000, "203.0.113.1"),
        _by_amount(world, vm, 91_000_000, "203.0.113.2"),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, TooManyOpenInvoices)]
    assert len(refused) == 1, results
    assert await _live(world, vm) == LNURL_MAX_LIVE_INVOICES
