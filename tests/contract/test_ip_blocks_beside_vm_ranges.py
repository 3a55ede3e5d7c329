"""A block sold from an IP space never overlaps a region's VM address range, on memory,
SQLite and MariaDB (r5: the shop's own test catalogue sold the /24 VMs got addresses from)."""

from __future__ import annotations

import attrs
import pytest

from app.billing.ip_room import NoIpRangeLeft
from domain.model import IpRange
from tests.contract import lifecycle_world, storage_backends
from tests.contract.test_ip_range_allocation import _order, _pay, _ranges, _space
from tests.unit.worker.world import World

# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database
# pytest fixture: the worker world over this module's backend
world = lifecycle_world.world


async def _vm_range(world: World, cidr: str, *, enabled: bool = True) -> IpRange:
    """A VM address range of region 1 (what the build gives VMs addresses from)."""
    async with world.shop.factory() as uow:
        row = await uow.ip_ranges.add(
            IpRange(id=0, cidr=cidr, enabled=enabled, region_id=1, gateway=cidr.split("/")[0])
        )
        await uow.commit()
    return row


async def test_blocks_are_cut_around_vm_ranges_enabled_or_not(world: World) -> None:
    """The space's first /26 is an enabled VM range and a /27 of its third a disabled one
    (its VMs keep their addresses, and it may be turned back on): only the second and the
    fourth /26 are sold, the tightest first, and a third order is refused."""
    tier = await _space(world, "198.51.100.0/24", 26)
    await _vm_range(world, "198.51.100.0/26")
    await _vm_range(world, "198.51.100.128/27", enabled=False)
    given = []
    for user in (1, 2):
        sub, item = await _order(world, tier, user)
        assert (await _pay(world, sub)).completed
        given += [r.cidr for r in await _ranges(world, item)]
    assert given == ["198.51.100.64/26", "198.51.100.192/26"]
    with pytest.raises(NoIpRangeLeft, match="No free /26 range is left in this IP space"):
        await _order(world, tier, 3)


async def test_an_order_paid_after_its_block_became_a_vm_range_is_not_given_it(
    world: World,
) -> None:
    """An operator adds a VM range over the only free block after an order: its payment
    is booked as credit (no time bought), not given the VMs' addresses."""
    tier = await _space(world, "198.51.100.0/24", 24)
    sub, item = await _order(world, tier)
    quote = await world.renew(subscription_id=sub.id)
    await _vm_range(world, "198.51.100.128/25")
    report = await world.complete(quote)
    assert report.completed and report.event is not None and report.event.credit is not None
    assert await _ranges(world, item) == []


async def test_a_lapsed_range_now_inside_a_vm_range_is_not_turned_back_on(world: World) -> None:
    """A holder whose block lapsed while it became part of a VM range (an adopted database)
    is given another free block when it renews, not its old one."""
    tier = await _space(world, "198.51.100.0/24", 26)
    sub, item = await _order(world, tier)
    await _pay(world, sub)
    [old] = await _ranges(world, item)
    async with world.shop.factory() as uow:
        await uow.ip_range_subscriptions.set_active(old.id, False, world.now)
        found = await uow.subscriptions.get(sub.id)
        assert found is not None
        await uow.subscriptions.update(attrs.evolve(found, is_active=False))
        await uow.commit()
    await _vm_range(world, old.cidr)
    assert (await _pay(world, sub)).completed
    active = [r.cidr for r in await _ranges(world, item) if r.is_active]
    assert active == ["198.51.100.64/26"]
