"""An order locks the region it places in, even when its offer moves region meanwhile."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import pytest

from adapters.memory.catalogue import MemoryRegions
from app.billing import ordering
from app.billing.errors import NoHostAvailable
from app.billing.ip_room import SpacesToLock
from app.billing.order_locks import (
    ATTEMPTS,
    RegionMoved,
    offer_region,
    under_region_lock,
    under_space_locks,
)
from domain.model import CustomPricing, IpRange, Region, VmTemplate
from ports.storage import StorageBusy, UnitOfWork, UnitOfWorkFactory
from tests.unit.billing.world import ALICE, PRICING, TEMPLATE, Shop, add_host

Read = Callable[[UnitOfWork], Awaitable[VmTemplate | CustomPricing | None]]


async def _second_region(shop: Shop) -> int:
    """Region 2 with a host and IPv4 addresses of its own; the host's id."""
    async with shop.factory() as uow:
        region = await uow.regions.add(Region(id=0, name="DE", enabled=True, company_id=1))
        host = await add_host(uow, region_id=region.id, name="h2", ip="10.0.1.1")
        await uow.ip_ranges.add(
            IpRange(id=0, cidr="10.0.2.0/24", enabled=True, region_id=region.id, gateway="")
        )
        await uow.commit()
    return host.id


async def _move(shop: Shop, kind: str, region_id: int) -> None:
    async with shop.factory() as uow:
        if kind == "template":
            template = await uow.templates.get(TEMPLATE)
            assert template is not None
            await uow.templates.update(attrs.evolve(template, region_id=region_id))
        else:
            pricing = await uow.custom_pricing.get(PRICING)
            assert pricing is not None
            await uow.custom_pricing.update(attrs.evolve(pricing, region_id=region_id))
        await uow.commit()


def _record_region_locks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    locked: list[int] = []

    async def lock(self: MemoryRegions, region_id: int) -> None:
        locked.append(region_id)

    monkeypatch.setattr(MemoryRegions, "lock", lock)
    return locked


def _moving_after_read(
    monkeypatch: pytest.MonkeyPatch, shop: Shop, kind: str, regions: list[int]
) -> None:
    """Each time an order reads its offer's region, an operator moves the offer to the next
    region of `regions` right after (before the order's own transaction starts)."""

    async def stale_region(uow_factory: UnitOfWorkFactory, read: Read) -> int | None:
        region = await offer_region(uow_factory, read)
        if regions:
            await _move(shop, kind, regions.pop(0))
        return region

    monkeypatch.setattr(ordering, "offer_region", stale_region)


@pytest.mark.parametrize("kind", ["template", "custom"])
async def test_an_offer_moved_before_the_lock_is_placed_under_its_new_regions_lock(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The order locked region 1, then found the offer in region 2: it runs again under
    region 2's lock, so its room is counted one order after another there too."""
    host_2 = await _second_region(shop)
    locked = _record_region_locks(monkeypatch)
    _moving_after_read(monkeypatch, shop, kind, [2])

    vm = await (shop.order() if kind == "template" else shop.order_custom())

    assert locked == [1, 2]
    assert vm.host_id == host_2
    async with shop.factory() as uow:
        assert (await uow.subscriptions.list_by_user(ALICE, 100)).total == 1


async def test_an_offer_that_keeps_moving_finds_no_host() -> None:
    tried: list[int | None] = []

    async def attempt(region_id: int | None) -> int:
        tried.append(region_id)
        raise RegionMoved(len(tried) + 10)

    with pytest.raises(NoHostAvailable):
        await under_region_lock(1, attempt)
    assert len(tried) == ATTEMPTS and tried[:2] == [1, 11]


async def test_a_booking_whose_host_keeps_moving_is_retried_later() -> None:
    """The booking of a late payment or an upgrade uses the same loop: it gives up with
    `StorageBusy` (the webhook or the settlement listener tries again), never 'no host'."""
    tried: list[int | None] = []

    async def attempt(region_id: int | None) -> int:
        tried.append(region_id)
        raise RegionMoved(len(tried) + 10)

    with pytest.raises(StorageBusy):
        await under_region_lock(None, attempt, exhausted=StorageBusy)
    assert len(tried) == ATTEMPTS and tried[:2] == [None, 11]


async def test_a_run_that_needs_more_ip_spaces_runs_again_holding_them() -> None:
    tried: list[frozenset[int]] = []

    async def attempt(spaces: frozenset[int]) -> str:
        tried.append(spaces)
        if 7 not in spaces:
            raise SpacesToLock(spaces | {7})
        return "booked"

    assert await under_space_locks(frozenset({1}), attempt) == "booked"
    assert tried == [{1}, {1, 7}]


async def test_ip_spaces_that_keep_changing_are_retried_later() -> None:
    """An IP-range order or a booking whose spaces keep changing (an admin at work) gives up
    with `StorageBusy` (503 for an order; the webhook or listener tries a booking again)."""
    tried: list[frozenset[int]] = []

    async def attempt(spaces: frozenset[int]) -> str:
        tried.append(spaces)
        raise SpacesToLock(spaces | {len(tried) + 10})

    with pytest.raises(StorageBusy):
        await under_space_locks(frozenset(), attempt)
    assert len(tried) == ATTEMPTS and tried[:2] == [frozenset(), {11}]
