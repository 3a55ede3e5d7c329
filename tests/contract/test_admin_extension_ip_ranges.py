"""An admin's extension of a lapsed subscription turns its IP ranges back on (r10), on memory,
SQLite and MariaDB: by a PATCH of `expires` and by a VM's extend."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import attrs
import pytest

from app.admin.subscriptions import SubscriptionPatch, update_subscription
from app.admin.vms import extend_vm
from app.billing.completion import complete_payment
from app.billing.ip_room import NoIpRangeLeft
from domain.enums import SubscriptionType
from domain.model import IpRangeSubscription, LineItem, Subscription, Vm
from ports.storage import UnitOfWorkFactory
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import engine_on, sql_factory
from tests.contract.storage_backends import Database
from tests.contract.test_ip_range_allocation import (
    RUN,
    _lapse_past_grace,
    _order,
    _pay,
    _ranges,
    _space,
    _space_of,
    _sub,
)
from tests.unit.worker.world import DAY, World

# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database
# pytest fixture: the worker world over this module's backend
world = lifecycle_world.world

ADMIN = 2


async def _lapse(world: World, sub: Subscription) -> None:
    """Past its expiry: the lifecycle stops it and ends its IP ranges (held in its grace)."""
    expires = (await _sub(world, sub)).expires
    assert expires is not None
    world.at(expires + timedelta(seconds=1))
    await world.lifecycle(runs=2, step=RUN)


async def _patch(world: World, sub: Subscription, **fields: object) -> Subscription:
    return await update_subscription(
        world.shop.factory,
        sub.id,
        SubscriptionPatch(**fields),  # type: ignore[arg-type]
        clock=world.clock,
        rails=world.shop.rails,
        admin_id=ADMIN,
    )


async def test_a_patch_of_expires_turns_the_lapsed_range_back_on(world: World) -> None:
    """(r10 proof) The admin gave a lapsed IP-range subscription 30 more days: it was paid,
    its range stayed ended and its block was sold to the next buyer."""
    tier = await _space(world, "198.51.100.0/24")
    a, a_item = await _order(world, tier, 1)
    await _pay(world, a)
    await _lapse(world, a)
    [ended] = await _ranges(world, a_item)
    assert not ended.is_active

    await _patch(world, a, expires=world.now + 30 * DAY)

    assert [(r.id, r.is_active, r.ended_at) for r in await _ranges(world, a_item)] == [
        (ended.id, True, None)
    ]
    with pytest.raises(NoIpRangeLeft):  # the holder's block is not for sale
        await _order(world, tier, 2)
    await _patch(world, a, expires=world.now + 40 * DAY)  # a running one: nothing to do
    assert [r.is_active for r in await _ranges(world, a_item)] == [True]


async def _vm_with_range(world: World, tier: int) -> tuple[Vm, LineItem]:
    """A paid VM whose subscription also sells a /24 of `tier`'s space, given and active."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    space = await _space_of(world, tier)
    config = {"available_ip_space_id": space.id, "prefix_size": 24}
    async with world.shop.factory() as uow:
        vps = await uow.line_items.get(vm.subscription_line_item_id)
        assert vps is not None
        both, [new_vps, ip] = await uow.subscriptions.add_with_line_items(
            attrs.evolve(sub, id=0),
            [
                attrs.evolve(vps, id=0),
                LineItem(
                    id=0,
                    subscription_id=0,
                    subscription_type=SubscriptionType.IP_RANGE,
                    name=space.cidr,
                    amount=1000,
                    configuration=config,
                ),
            ],
        )
        await uow.vms.update(attrs.evolve(vm, subscription_line_item_id=new_vps.id))
        await uow.ip_range_subscriptions.add(
            IpRangeSubscription(
                id=0,
                subscription_line_item_id=ip.id,
                available_ip_space_id=space.id,
                created=world.now,
                cidr=space.cidr,
                started_at=world.now,
            )
        )
        await uow.commit()
    moved = await world.shop.vm(vm.id)
    assert (await world.sub(moved)).id == both.id
    return moved, ip


async def test_a_vm_extend_turns_its_subscriptions_lapsed_range_back_on(world: World) -> None:
    """(r10) PUT /vms/{id}/extend of a VM whose subscription also holds an IP range."""
    tier = await _space(world, "198.51.100.0/24")
    vm, ip = await _vm_with_range(world, tier)
    await _lapse(world, await world.sub(vm))
    [ended] = await _ranges(world, ip)
    assert not ended.is_active

    await extend_vm(
        world.shop.factory, world.clock, world.queue, vm_id=vm.id, days=30, admin_id=ADMIN
    )

    assert [(r.id, r.is_active) for r in await _ranges(world, ip)] == [(ended.id, True)]
    with pytest.raises(NoIpRangeLeft):
        await _order(world, tier, 2)


@pytest.mark.parametrize("blocks", [1, 2])
async def test_a_block_taken_meanwhile_is_replaced_as_a_late_renewal_does(
    world: World, blocks: int
) -> None:
    """Cancelled after its grace, the holder's block went to another buyer. The admin's
    extension gives it another free block, as a late renewal does; with none left it is
    refused (422), nothing changed (a late renewal would become credit, buying no time)."""
    cidr = "198.51.100.0/24" if blocks == 1 else "198.51.100.0/23"
    tier = await _space(world, cidr)
    a, a_item = await _order(world, tier, 1)
    await _pay(world, a)
    await _lapse_past_grace(world, a)
    [ended] = await _ranges(world, a_item)
    b, b_item = await _order(world, tier, 2)
    await _pay(world, b)
    assert [r.cidr for r in await _ranges(world, b_item)] == [ended.cidr]
    before = await _sub(world, a)

    back = {"expires": world.now + 30 * DAY, "is_active": True}
    if blocks == 1:
        with pytest.raises(NoIpRangeLeft, match="cannot be given back: no free /24 block"):
            await _patch(world, a, **back)
        assert await _sub(world, a) == before
        assert await _ranges(world, a_item) == [ended]
        return
    await _patch(world, a, **back)
    assert [(r.cidr, r.is_active) for r in await _ranges(world, a_item)] == [
        (ended.cidr, False),
        ("198.51.101.0/24", True),
    ]
    assert [r.is_active for r in await _ranges(world, b_item)] == [True]


async def test_an_order_never_paid_is_given_no_block_by_an_expiry(world: World) -> None:
    """Only a payment gives a first block: an expiry set on a never-paid order gives none."""
    tier = await _space(world, "198.51.100.0/24")
    a, a_item = await _order(world, tier, 1)
    await _patch(world, a, expires=world.now + 30 * DAY, is_active=True)
    assert await _ranges(world, a_item) == []


async def test_an_extension_racing_a_payment_for_the_block_gives_it_once(
    world: World, database: Database
) -> None:
    """The holder's block, free after its cancellation, is paid for by another buyer while an
    admin extends the holder (on MariaDB each on its own connection): both take the space's
    lock, so exactly one of them holds it; the other is refused (422) or booked as credit."""
    tier = await _space(world, "198.51.100.0/24")
    a, a_item = await _order(world, tier, 1)
    await _pay(world, a)
    await _lapse_past_grace(world, a)
    b, b_item = await _order(world, tier, 2)
    quote = await world.renew(subscription_id=b.id)
    back = SubscriptionPatch(expires=world.now + 30 * DAY, is_active=True)

    async def race(factory: UnitOfWorkFactory) -> list[object]:
        return list(
            await asyncio.gather(
                update_subscription(
                    factory, a.id, back, clock=world.clock, rails=world.shop.rails, admin_id=ADMIN
                ),
                complete_payment(
                    factory, world.clock, world.shop.rails, world.queue, payment_id=quote.id
                ),
                return_exceptions=True,
            )
        )

    if database.url is None:
        results = await race(world.shop.factory)
    else:
        async with engine_on(database) as engine:
            results = await race(sql_factory(engine))
    holders = [
        item.id
        for item in (a_item, b_item)
        for r in await _ranges(world, item)
        if r.is_active and r.cidr == "198.51.100.0/24"
    ]
    assert len(holders) == 1, results
    if holders == [a_item.id]:
        assert not isinstance(results[0], BaseException), results
    else:
        assert isinstance(results[0], NoIpRangeLeft), results
