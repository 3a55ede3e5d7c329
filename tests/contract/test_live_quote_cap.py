"""The live-quote cap on memory, SQLite and MariaDB: a subscription holds at most
`MAX_LIVE_QUOTES` live renewal and upgrade quotes; one more is refused before its Lightning
node or card provider is asked, renewal reuse still answers (upgrades are never reused), a
place frees when one expires, and racing requests at the cap store at most the cap."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from app.billing.errors import TooManyOpenQuotes
from app.billing.renewal import renew
from domain.credit import MAX_LIVE_QUOTES
from domain.enums import PaymentMethod
from domain.model import SubscriptionPayment, Vm
from domain.upgrade import UpgradeConfig
from ports.storage import UnitOfWorkFactory
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import engine_on, sql_factory
from tests.contract.storage_backends import Database
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world
CAP = MAX_LIVE_QUOTES


async def _renew(
    world: World, vm: Vm, factory: UnitOfWorkFactory | None = None, **kw: Any
) -> SubscriptionPayment:
    shop = world.shop
    return await renew(
        factory or shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        user_id=vm.user_id,
        vm_id=vm.id,
        **kw,
    )


async def _upgrade(world: World, vm: Vm, cpu: int) -> SubscriptionPayment:
    return await upgrade_payment(world.shop, vm, UpgradeConfig(new_cpu=cpu), user_id=vm.user_id)


async def _live(world: World, vm: Vm) -> int:
    sub = await world.shop.subscription(vm)
    async with world.shop.factory() as uow:
        return await uow.payments.count_live_quotes(sub.id, world.clock.now())


async def test_a_flood_of_interval_counts_stops_at_the_cap_before_the_rail(world: World) -> None:
    vm = await world.shop.order()  # never paid: each count was a new free invoice (D10)
    made = [await _renew(world, vm, intervals=n) for n in range(1, CAP + 1)]
    node, revolut = world.shop.node, world.shop.revolut
    for n in range(CAP + 1, CAP + 20):
        with pytest.raises(TooManyOpenQuotes) as err:
            await _renew(world, vm, intervals=n)
        assert err.value.kind == "unprocessable"  # 422, as D25's caps
    with pytest.raises(TooManyOpenQuotes):  # another method: the cap is across methods
        await _renew(world, vm, intervals=1, method=PaymentMethod.REVOLUT)
    assert len(node.invoices) == CAP and revolut.orders == {} and node.cancelled == []
    assert len(await world.shop.payments(vm)) == CAP
    # asking again for a live one still gets it (D10), at the cap too
    assert (await _renew(world, vm, intervals=3)).id == made[2].id
    assert len(node.invoices) == CAP and await _live(world, vm) == CAP


async def test_a_place_frees_when_a_quote_expires(world: World) -> None:
    vm = await world.shop.order()
    first = await _renew(world, vm, intervals=1)
    world.advance(timedelta(minutes=5))
    for n in range(2, CAP + 1):
        await _renew(world, vm, intervals=n)
    with pytest.raises(TooManyOpenQuotes):
        await _renew(world, vm, intervals=CAP + 1)
    assert first.expires is not None
    world.clock.set(first.expires)  # the oldest ends: one place
    again = await _renew(world, vm, intervals=CAP + 1)
    assert again.id != first.id and await _live(world, vm) == CAP
    with pytest.raises(TooManyOpenQuotes):
        await _renew(world, vm, intervals=CAP + 2)
    assert len(world.shop.node.invoices) == CAP + 1


async def test_identical_upgrades_each_make_a_payment_until_the_cap(world: World) -> None:
    """Upgrade payments are never reused (D10): each request is a new invoice, and the cap
    (renewals and upgrades together) stops them before the node is asked."""
    vm = await world.shop.order_custom()  # 2 vCPU
    await world.complete(await _renew(world, vm))  # paid: its quote no longer live
    node, revolut = world.shop.node, world.shop.revolut
    before = len(node.invoices)
    made = [await _upgrade(world, vm, 4) for _ in range(CAP)]
    assert len({p.id for p in made}) == CAP  # the same upgrade asked again: a new one
    assert len(node.invoices) == before + CAP and await _live(world, vm) == CAP
    for _ in range(10):
        with pytest.raises(TooManyOpenQuotes) as err:
            await _upgrade(world, vm, 4)
        assert err.value.kind == "unprocessable"
    with pytest.raises(TooManyOpenQuotes):
        await _upgrade(world, vm, 6)
    with pytest.raises(TooManyOpenQuotes):  # the upgrades hold the renewals' places too
        await _renew(world, vm, intervals=2)
    assert len(node.invoices) == before + CAP and node.cancelled == [] and revolut.orders == {}
    assert len(await world.shop.payments(vm)) == 1 + CAP  # the paid renewal and the upgrades
    assert made[0].expires is not None
    world.clock.set(made[0].expires)  # they all end: the places free
    assert (await _upgrade(world, vm, 4)).id not in {p.id for p in made}


async def test_racing_requests_at_the_cap_store_at_most_the_cap(
    world: World, database: Database
) -> None:
    """Every racer passes the early check (their invoices are all being made at once); the
    check under the subscription's lock lets one store, refuses the others and cancels
    their invoices at the node."""
    vm = await world.shop.order()
    for n in range(1, CAP):
        await _renew(world, vm, intervals=n)
    racers = 4
    node = world.shop.node
    real, arrived, all_in = node.create_invoice, [0], asyncio.Event()

    async def together(amount_msat: int, memo: str, expiry_seconds: int) -> Any:
        arrived[0] += 1
        if arrived[0] == racers:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 5)
        return await real(amount_msat, memo, expiry_seconds)

    node.create_invoice = together  # type: ignore[method-assign]

    async def race(factory: UnitOfWorkFactory) -> list[Any]:
        return await asyncio.gather(
            *(_renew(world, vm, factory, intervals=CAP + n) for n in range(racers)),
            return_exceptions=True,
        )

    if database.url is None:
        results = await race(world.shop.factory)
    else:  # a separate engine: every request on its own pooled connection
        async with engine_on(database) as engine:
            results = await race(sql_factory(engine))
    stored = [r for r in results if isinstance(r, SubscriptionPayment)]
    refused = [r for r in results if isinstance(r, TooManyOpenQuotes)]
    assert (len(stored), len(refused)) == (1, racers - 1), results
    assert await _live(world, vm) == CAP
    assert len(node.cancelled) == racers - 1  # the refused ones' invoices, at the node
