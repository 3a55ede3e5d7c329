"""Unpaid IP-range orders hold at most a per-user budget of addresses and a share of each IP
space (D25, r5: one free key held a whole space, hour after hour), on memory, SQLite and
MariaDB; paid blocks are never held to either."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from fractions import Fraction

import pytest

from app.billing.ip_purchase import IpRangeItem, NewSubscription, create_subscription
from app.billing.ip_room import NoIpRangeLeft
from domain.model import Subscription
from domain.unpaid_ip_room import UnpaidIpRoom, UnpaidIpRoomExceeded
from ports.storage import UnitOfWorkFactory
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import engine_on, sql_factory
from tests.contract.storage_backends import Database
from tests.contract.test_ip_range_allocation import _pay, _space, _users
from tests.unit.worker.world import World

# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database
# pytest fixture: the worker world over this module's backend
world = lifecycle_world.world

ONE_24 = UnpaidIpRoom(ipv4=24, ipv6=None, space_share=None)
HALF = UnpaidIpRoom(ipv4=None, ipv6=None, space_share=Fraction(1, 2))


async def _order(
    world: World,
    tier: int,
    user: int,
    limits: UnpaidIpRoom,
    count: int = 1,
    factory: UnitOfWorkFactory | None = None,
) -> Subscription:
    sub, _ = await create_subscription(
        factory or world.shop.factory,
        world.clock,
        user,
        NewSubscription(line_items=(IpRangeItem(ip_space_pricing_id=tier),) * count),
        max_unpaid=None,
        unpaid_ip=limits,
    )
    return sub


async def test_one_users_unpaid_orders_hold_at_most_its_budget(world: World) -> None:
    """A /24 budget: a second unpaid /24 of the same user is refused, saying why, while
    another user still orders; a paid block, or an order past its hold, no longer counts."""
    tier = await _space(world, "198.51.100.0/22", 24)
    first = await _order(world, tier, 1, ONE_24)
    with pytest.raises(
        UnpaidIpRoomExceeded,
        match=r"^Your unpaid orders would hold 512 IPv4 addresses \(at most 256: one /24\)",
    ):
        await _order(world, tier, 1, ONE_24)
    with pytest.raises(UnpaidIpRoomExceeded):
        await _order(world, tier, 2, ONE_24, count=2)  # one order beyond the budget
    await _order(world, tier, 2, ONE_24)
    assert (await _pay(world, first)).completed
    late = await _order(world, tier, 1, ONE_24)
    world.advance(timedelta(minutes=61))  # its window is over and no invoice was asked for
    await _order(world, tier, 1, ONE_24)
    async with world.shop.factory() as uow:
        found = await uow.subscriptions.get(late.id)
    assert found is not None and not found.is_setup


async def test_unpaid_orders_together_hold_at_most_a_share_of_a_space(world: World) -> None:
    """Half of a /22: two users' unpaid /24s fill it and a third is refused as from a full
    space, though two /24s are free; a payment takes its block out of the share."""
    tier = await _space(world, "198.51.100.0/22", 24)
    one, _two, three = await _users(world, 3)
    held = await _order(world, tier, one, HALF)
    await _order(world, tier, _two, HALF)
    with pytest.raises(NoIpRangeLeft, match="No free /24 range is left in this IP space"):
        await _order(world, tier, three, HALF)
    with pytest.raises(NoIpRangeLeft):
        await _order(world, tier, three, HALF, count=3)
    assert (await _pay(world, held)).completed
    await _order(world, tier, three, HALF)


async def test_a_block_larger_than_the_share_is_never_held_unpaid(world: World) -> None:
    """A /24 space sold whole: half of it cannot hold the order (the operator turns the
    share off to sell a space as one block); with the share off it is sold."""
    tier = await _space(world, "198.51.100.0/24", 24)
    with pytest.raises(NoIpRangeLeft):
        await _order(world, tier, 1, HALF)
    await _order(world, tier, 1, UnpaidIpRoom(ipv4=None, ipv6=None, space_share=None))


async def test_one_users_orders_racing_for_its_budget_accept_one(
    world: World, database: Database
) -> None:
    """Four orders of one user at once (on MariaDB each on its own connection), judged one
    after another under the user's lock: one holds the /24 budget, three are refused."""
    tier = await _space(world, "198.51.100.0/22", 24)

    async def race(factory: UnitOfWorkFactory) -> list[object]:
        return await asyncio.gather(
            *(_order(world, tier, 1, ONE_24, factory=factory) for _ in range(4)),
            return_exceptions=True,
        )

    if database.url is None:
        results = await race(world.shop.factory)
    else:
        async with engine_on(database) as engine:
            results = await race(sql_factory(engine))
    refused = [r for r in results if isinstance(r, UnpaidIpRoomExceeded)]
    made = [r for r in results if isinstance(r, Subscription)]
    assert (len(made), len(refused)) == (1, 3), results
