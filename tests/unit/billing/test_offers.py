"""The catalogue a buyer sees: listed offers capped by host room, images, custom prices."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from app.billing.errors import PricingNotFound
from app.billing.offers import list_images, list_offers, price_custom_spec
from domain.enums import DiskInterface, DiskType
from domain.model import GIB
from domain.money import Currency, Money
from tests.unit.billing.world import IMAGE, START, TEMPLATE, Shop


async def test_offers_list_the_template_and_the_custom_pricing_capped_by_host_room(
    shop: Shop,
) -> None:
    await shop.order_custom(cpu=8, memory=8 * GIB, disk=100 * GIB)
    offers = await list_offers(shop.factory, shop.clock)
    assert [o.template.id for o in offers.templates] == [TEMPLATE]
    assert offers.custom is not None
    [custom] = offers.custom
    # the host has 16 CPUs, 64 GiB and 2 TiB; one 8 CPU / 8 GiB / 100 GiB VM is on it
    assert (custom.max_cpu, custom.max_memory) == (8, 16 * GIB)
    assert [d.max_disk for d in custom.disks] == [512 * GIB]


async def test_a_full_host_lists_nothing_orderable(shop: Shop) -> None:
    for _ in range(8):
        await shop.order()
    offers = await list_offers(shop.factory, shop.clock)
    assert offers.templates == [] and offers.custom == []


async def test_expired_offers_and_disabled_regions_are_not_listed(shop: Shop) -> None:
    async with shop.factory() as uow:
        template = await uow.templates.get(TEMPLATE)
        assert template is not None
        await uow.templates.update(attrs.evolve(template, expires=START - timedelta(days=1)))
        await uow.commit()
    assert (await list_offers(shop.factory, shop.clock)).templates == []
    async with shop.factory() as uow:
        region = await uow.regions.get(1)
        assert region is not None
        await uow.regions.update(attrs.evolve(region, enabled=False))
        await uow.commit()
    assert (await list_offers(shop.factory, shop.clock)).custom is None


async def test_only_enabled_images_are_listed(shop: Shop) -> None:
    assert [i.id for i in await list_images(shop.factory)] == [IMAGE]


async def test_a_custom_spec_is_priced_monthly_in_the_pricing_currency(shop: Shop) -> None:
    spec = {
        "cpu": 2,
        "memory": 4 * GIB,
        "disk": 80 * GIB,
        "disk_type": DiskType.SSD,
        "disk_interface": DiskInterface.PCIE,
    }
    price = await price_custom_spec(shop.factory, pricing_id=1, **spec)  # type: ignore[arg-type]
    assert price == Money(Currency.EUR, 400 + 400 + 4000)
    with pytest.raises(PricingNotFound):
        await price_custom_spec(shop.factory, pricing_id=9, **spec)  # type: ignore[arg-type]
