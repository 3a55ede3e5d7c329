"""D25 on memory, SQLite and MariaDB: the never-paid cap under a race, and what holds host room."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import attrs
import pytest

from app.billing.errors import NoHostAvailable, OrderLapsed, TooManyUnpaidVms
from app.billing.lnurl import renew_by_amount
from app.billing.ordering import OrderTerms, order_custom_vm, order_vm
from app.billing.renewal import renew
from domain.enums import DiskInterface, DiskType
from domain.lifecycle import UNPAID_CLEANUP_AFTER
from domain.model import GIB, SubscriptionPayment, Vm
from domain.unpaid_room import NO_UNPAID_ROOM_LIMITS
from ports.storage import UnitOfWorkFactory
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import engine_on, reserving_vms, sql_factory
from tests.contract.storage_backends import Database
from tests.unit.billing.world import ALICE, ALICE_KEY, BOB, IMAGE, PRICING, TEMPLATE
from tests.unit.worker.world import World

database = storage_backends.database
MINUTE = timedelta(minutes=1)
RACERS = 32


# pytest fixture: the worker world over this module's backend
world = lifecycle_world.world


async def _host_for(world: World, vms: int) -> None:
    """Shrink the one host to room for `vms` VMs of the Tiny plan (2 vCPU each), all of
    which unpaid orders may take (`_order`: no D25 room limits, the cap is tested here)."""
    async with world.shop.factory() as uow:
        host = await uow.hosts.get(1)
        assert host is not None
        await uow.hosts.update(attrs.evolve(host, cpu=2 * vms))
        await uow.commit()


async def _order(factory: UnitOfWorkFactory, world: World, user_id: int = ALICE) -> Vm:
    key = ALICE_KEY if user_id == ALICE else 2
    terms = OrderTerms(
        user_id=user_id, image_id=IMAGE, ssh_key_id=key, unpaid_room=NO_UNPAID_ROOM_LIMITS
    )
    return await order_vm(factory, world.clock, terms, TEMPLATE)


async def _live_vms(world: World, user_id: int) -> list[Vm]:
    async with world.shop.factory() as uow:
        return (await uow.vms.list_by_user(user_id, 100)).items


async def test_32_concurrent_orders_of_one_user_leave_exactly_three(
    world: World, database: Database
) -> None:
    """The issue's flood: before D25 every order went through until the host was full."""

    async def flood(factory: UnitOfWorkFactory) -> list[Vm | BaseException]:
        return await asyncio.gather(
            *(_order(factory, world) for _ in range(RACERS)), return_exceptions=True
        )

    if database.url is None:
        results = await flood(world.shop.factory)
    else:  # a separate engine: every order on its own pooled connection
        async with engine_on(database) as engine:
            results = await flood(sql_factory(engine))
    made = [r for r in results if isinstance(r, Vm)]
    refused = [r for r in results if isinstance(r, TooManyUnpaidVms)]
    assert (len(made), len(refused)) == (3, RACERS - 3), results
    assert "unpaid" in refused[0].message
    assert len(await _live_vms(world, ALICE)) == 3
    async with world.shop.factory() as uow:
        assert len(await uow.vms.list_never_paid(user_id=ALICE)) == 3
        assert (await uow.subscriptions.list_by_user(ALICE, 100)).total == 3  # nothing half-made


async def test_one_flooding_user_no_longer_fills_the_host_for_everyone(world: World) -> None:
    """Room for 4: before D25 the flood took all 4 and Bob got "No available hosts found"."""
    await _host_for(world, 4)
    results = await asyncio.gather(
        *(_order(world.shop.factory, world) for _ in range(RACERS)), return_exceptions=True
    )
    assert len([r for r in results if isinstance(r, Vm)]) == 3
    bob = await _order(world.shop.factory, world, BOB)
    assert bob.user_id == BOB


async def test_custom_orders_count_and_are_capped_too(world: World) -> None:
    for _ in range(2):
        await _order(world.shop.factory, world)
    custom: dict[str, Any] = {
        "cpu": 2,
        "memory": 4 * GIB,
        "disk": 80 * GIB,
        "disk_type": DiskType.SSD,
        "disk_interface": DiskInterface.PCIE,
    }
    terms = OrderTerms(user_id=ALICE, image_id=IMAGE, ssh_key_id=ALICE_KEY)
    await order_custom_vm(world.shop.factory, world.clock, terms, PRICING, **custom)
    with pytest.raises(TooManyUnpaidVms):
        await order_custom_vm(world.shop.factory, world.clock, terms, PRICING, **custom)
    with pytest.raises(TooManyUnpaidVms):
        await _order(world.shop.factory, world)
    assert len(await _live_vms(world, ALICE)) == 3


async def test_paying_or_cleanup_frees_a_slot(world: World) -> None:
    first, *_ = [await _order(world.shop.factory, world) for _ in range(3)]
    with pytest.raises(TooManyUnpaidVms):
        await _order(world.shop.factory, world)
    await world.complete(await world.renew(first))  # paid: no longer counts
    fourth = await _order(world.shop.factory, world)
    with pytest.raises(TooManyUnpaidVms):
        await _order(world.shop.factory, world)

    unpaid = sorted(vm.id for vm in await _live_vms(world, ALICE) if vm.id != first.id)
    assert fourth.id in unpaid and len(unpaid) == 3
    world.advance(61 * MINUTE)  # the never-paid cleanup removes the three unpaid ones
    assert sorted((await world.vm_check()).deleted) == unpaid
    await _order(world.shop.factory, world)


async def test_a_never_paid_order_holds_room_only_during_its_payment_window(
    world: World,
) -> None:
    """Within the hour (or while an invoice is pending) the room is held, so paying always
    finds it; after that the order no longer counts, even before the worker deletes it."""
    await _host_for(world, 2)
    a1 = await _order(world.shop.factory, world)
    await _order(world.shop.factory, world)
    with pytest.raises(NoHostAvailable):
        await _order(world.shop.factory, world, BOB)

    world.advance(59 * MINUTE)
    invoice = await world.renew(a1)  # pending for 10 more minutes: a1 keeps its room
    world.advance(2 * MINUTE)
    async with world.shop.factory() as uow:
        held = {vm.id for vm in await reserving_vms(uow, world.now)}
    assert a1.id in held and len(held) == 1
    bob = await _order(world.shop.factory, world, BOB)  # the lapsed second order's room
    with pytest.raises(NoHostAvailable):
        await _order(world.shop.factory, world, BOB)

    await world.complete(invoice)  # a1 paid: it had kept its room
    async with world.shop.factory() as uow:
        held = {vm.id for vm in await reserving_vms(uow, world.now)}
    assert held == {a1.id, bob.id}


async def test_concurrent_lnurl_requests_for_one_amount_store_one_invoice(
    world: World, database: Database
) -> None:
    """D25 reuse under a race: the store re-checks under the subscription lock."""
    vm = await world.paid_vm()
    shop = world.shop

    async def ask(factory: UnitOfWorkFactory) -> bytes:
        payment = await renew_by_amount(
            factory,
            shop.clock,
            shop.rails,
            shop.rates,
            shop.tax_rates,
            vm_id=vm.id,
            amount_msat=700_000,
        )
        return payment.id

    if database.url is None:
        ids = await asyncio.gather(*(ask(shop.factory) for _ in range(8)))
    else:
        async with engine_on(database) as engine:
            factory = sql_factory(engine)
            ids = await asyncio.gather(*(ask(factory) for _ in range(8)))
    assert len(set(ids)) == 1
    pending = [p for p in await shop.payments(vm) if not p.is_paid]
    assert [p.id for p in pending] == [ids[0]]


async def test_chained_invoices_cannot_hold_a_never_paid_order_past_its_deadline(
    world: World,
) -> None:
    """The attack: a new invoice before the last one expires, another interval count each
    time so D10 does not reuse it. Invoices asked for within the hour hold the room until
    their own expiry; after the hour none is issued, so the cleanup deletes the order once
    the last one has expired and the room is free again (D17, D25)."""
    await _host_for(world, 1)
    vm = await _order(world.shop.factory, world)
    window_ends = (await world.sub(vm)).created + UNPAID_CLEANUP_AFTER
    world.advance(31 * MINUTE)
    issued: list[SubscriptionPayment] = []
    refused = 0
    for ask in range(4):  # minutes 40, 49, 58 and 67: each count's last invoice has expired
        world.advance(9 * MINUTE)
        try:
            issued.append(await _renew(world, vm, intervals=1 + ask % 2))
        except OrderLapsed:
            refused += 1
        assert (await world.vm_check()).deleted == []  # held all along
    assert len({p.id for p in issued}) == 3 and refused == 1
    assert all(p.created <= window_ends for p in issued)
    deadline = max(p.expires for p in issued)
    assert deadline > world.now > window_ends  # the window's last invoice holds it still
    with pytest.raises(NoHostAvailable):
        await _order(world.shop.factory, world, BOB)

    world.at(deadline + timedelta(seconds=1))
    assert (await world.vm_check()).deleted == [vm.id]
    async with world.shop.factory() as uow:
        assert vm.id not in {v.id for v in await reserving_vms(uow, world.now)}
    await _order(world.shop.factory, world, BOB)  # the room is free for someone else


async def _renew(world: World, vm: Vm, intervals: int) -> SubscriptionPayment:
    return await renew(
        world.shop.factory,
        world.clock,
        world.shop.rails,
        world.shop.rates,
        world.shop.tax_rates,
        user_id=None,
        vm_id=vm.id,
        intervals=intervals,
    )
