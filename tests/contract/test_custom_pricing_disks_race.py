"""Review r7: a custom pricing's `disk_pricing` is refused while a live custom VM has a disk
type it would leave unpriced. On MariaDB the refusal must see an order committed while the
edit runs (after its snapshot, before its writes): it judges the templates as last
committed, under the region's lock, at the end of the edit's transaction."""

from __future__ import annotations

import pytest

from app.admin import custom_pricing
from app.admin.custom_pricing import DisksInUse, update_pricing
from domain.enums import DiskInterface, DiskType
from domain.model import GIB, Vm
from ports.storage import UnitOfWork
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import PRICING, Shop

database = storage_backends.database
shop = lifecycle_world.shop
#: the order runs in its own transactions while the edit's is open: MariaDB's row locks let
#: it; SQLite's write lock and the memory store's serialise the two
pytestmark = storage_backends.only("mysql")

HDD_ONLY = {
    "kind": DiskType.HDD,
    "interface": DiskInterface.SATA,
    "cost": 2,
    "min_disk_size": 10 * GIB,
    "max_disk_size": 512 * GIB,
}


async def test_an_order_committed_during_the_edit_is_seen(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edit's first read (its snapshot) is before any custom VM; an SSD order commits
    before the edit writes; the edit is still refused, the SSD row kept."""
    ordered: list[Vm] = []
    check_region = custom_pricing._check_region

    async def order_meanwhile(uow: UnitOfWork, region_id: int) -> None:
        # between the edit's first read (the pricing) and its first write
        ordered.append(await shop.order_custom())
        await check_region(uow, region_id)

    monkeypatch.setattr(custom_pricing, "_check_region", order_meanwhile)
    async with shop.factory() as uow:
        pricing = await uow.custom_pricing.get(PRICING)
    assert pricing is not None
    fields = {"disk_pricing": [HDD_ONLY], "region_id": pricing.region_id}

    with pytest.raises(DisksInUse, match=r"ssd \(pcie\) ×1"):
        await update_pricing(shop.factory, PRICING, fields, clock=shop.clock)

    assert len(ordered) == 1
    async with shop.factory() as uow:
        disks = await uow.custom_pricing.list_disks(PRICING)
    assert [(d.kind, d.interface) for d in disks] == [(DiskType.SSD, DiskInterface.PCIE)]
