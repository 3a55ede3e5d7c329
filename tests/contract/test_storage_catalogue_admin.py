"""Catalogue storage the admin API needs: hard deletes, usage counts, sold ranges per space,
live addresses, and host secrets sealed on update — on memory, SQLite and MariaDB."""

from __future__ import annotations

import attrs
import pytest
from sqlalchemy import select

from adapters.mysql import tables
from domain.enums import DiskInterface, DiskType, InternetRegistry
from domain.model import (
    GIB,
    AvailableIpSpace,
    Company,
    CustomPricing,
    CustomPricingDisk,
    CustomTemplate,
    IpAssignment,
    IpRange,
    IpRangeSubscription,
    IpSpacePricing,
)
from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import Backend, at, stored_world

database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory


def _pricing(region_id: int) -> CustomPricing:
    return CustomPricing(
        id=0,
        name="c",
        enabled=True,
        created=at(1),
        expires=None,
        region_id=region_id,
        currency="EUR",
        cpu_cost=1,
        memory_cost=1,
        ip4_cost=1,
        ip6_cost=1,
    )


async def test_remove_deletes_one_row_and_says_so(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        company = await uow.companies.add(Company(id=0, created=at(1), name="X"))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.companies.remove(company.id) is True
        assert await uow.companies.remove(company.id) is False
    async with uow_factory() as uow:  # not committed: still there
        assert await uow.companies.get(company.id) is not None
        assert await uow.companies.remove(company.id) is True
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.companies.get(company.id) is None


async def test_pricing_disks_are_removed_with_the_pricing(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        pricing = await uow.custom_pricing.add(_pricing(w.region.id))
        other = await uow.custom_pricing.add(_pricing(w.region.id))
        for p in (pricing, other):
            for kind in DiskType:
                await uow.custom_pricing.add_disk(
                    CustomPricingDisk(
                        id=0, pricing_id=p.id, kind=kind, interface=DiskInterface.PCIE, cost=1
                    )
                )
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.custom_pricing.remove_disks(pricing.id) == 2
        assert await uow.custom_pricing.remove(pricing.id) is True
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.custom_pricing.list_disks(pricing.id) == []
        assert len(await uow.custom_pricing.list_disks(other.id)) == 2


async def test_usage_counts(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        pricing = await uow.custom_pricing.add(_pricing(w.region.id))
        for _ in range(2):
            await uow.custom_templates.add(
                CustomTemplate(
                    id=0,
                    cpu=1,
                    memory=GIB,
                    disk_size=10 * GIB,
                    disk_type=DiskType.SSD,
                    disk_interface=DiskInterface.PCIE,
                    pricing_id=pricing.id,
                )
            )
        await uow.vms.delete(w.vm.id)  # a deleted VM still points at its template and image
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.custom_templates.count_by_pricing() == {pricing.id: 2}
        assert await uow.vms.count_using(template_id=w.template.id) == 1
        assert await uow.vms.count_using(image_id=w.image.id) == 1
        assert await uow.vms.count_using(image_id=w.image.id + 1) == 0
        assert await uow.subscriptions.any_for_company(w.company.id) is True
        assert await uow.subscriptions.any_for_company(w.company.id + 1) is False


async def test_disks_in_use(uow_factory: UnitOfWorkFactory) -> None:
    """A template counts while a VM not deleted uses it, or no VM does (an order's, just
    committed); one only deleted VMs use does not."""
    w = await stored_world(uow_factory)
    spec = CustomTemplate(
        id=0,
        cpu=1,
        memory=GIB,
        disk_size=10 * GIB,
        disk_type=DiskType.SSD,
        disk_interface=DiskInterface.PCIE,
        pricing_id=0,
    )
    async with uow_factory() as uow:
        pricing = await uow.custom_pricing.add(_pricing(w.region.id))
        other = await uow.custom_pricing.add(_pricing(w.region.id))
        live = await uow.custom_templates.add(attrs.evolve(spec, pricing_id=pricing.id))
        gone = await uow.custom_templates.add(
            attrs.evolve(spec, pricing_id=pricing.id, disk_type=DiskType.HDD)
        )
        await uow.custom_templates.add(
            attrs.evolve(spec, pricing_id=pricing.id, disk_interface=DiskInterface.SATA)
        )
        await uow.custom_templates.add(attrs.evolve(spec, pricing_id=other.id))
        await uow.vms.update(attrs.evolve(w.vm, template_id=None, custom_template_id=live.id))
        second = await uow.vms.add(
            attrs.evolve(w.vm, id=0, mac_address="bc:24:11:00:00:02", custom_template_id=gone.id)
        )
        await uow.vms.delete(second.id)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.custom_templates.disks_in_use(pricing.id) == {
            (DiskType.SSD, DiskInterface.PCIE): 1,
            (DiskType.SSD, DiskInterface.SATA): 1,
        }


async def test_live_assignments_leave_out_deleted_ones(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        ip_range = await uow.ip_ranges.add(
            IpRange(
                id=0, cidr="10.0.0.0/24", enabled=True, region_id=w.region.id, gateway="10.0.0.1"
            )
        )
        kept = await uow.ip_assignments.add(
            IpAssignment(id=0, vm_id=w.vm.id, ip_range_id=ip_range.id, ip="10.0.0.5")
        )
        gone = await uow.ip_assignments.add(
            IpAssignment(id=0, vm_id=w.vm.id, ip_range_id=ip_range.id, ip="10.0.0.6")
        )
        await uow.ip_assignments.delete(gone.id)
        await uow.commit()
    async with uow_factory() as uow:
        assert [a.id for a in await uow.ip_assignments.list_live()] == [kept.id]


async def test_sold_ranges_by_space_and_space_removal(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)

    def space(cidr: str) -> AvailableIpSpace:
        return AvailableIpSpace(
            id=0,
            company_id=w.company.id,
            cidr=cidr,
            min_prefix_size=24,
            max_prefix_size=22,
            registry=InternetRegistry.RIPE,
            created=at(1),
            updated=at(1),
        )

    async with uow_factory() as uow:
        a = await uow.ip_spaces.add(space("192.0.2.0/22"))
        b = await uow.ip_spaces.add(space("198.51.100.0/22"))
        price = await uow.ip_space_pricing.add(
            IpSpacePricing(
                id=0,
                available_ip_space_id=b.id,
                prefix_size=24,
                price_per_month=1,
                created=at(1),
                updated=at(1),
            )
        )
        sold = await uow.ip_range_subscriptions.add(
            IpRangeSubscription(
                id=0,
                subscription_line_item_id=w.line_item.id,
                available_ip_space_id=a.id,
                created=at(1),
                cidr="192.0.2.0/24",
            )
        )
        await uow.commit()
    async with uow_factory() as uow:
        assert [r.id for r in await uow.ip_range_subscriptions.list_by_space(a.id)] == [sold.id]
        assert await uow.ip_range_subscriptions.list_by_space(b.id) == []
        assert await uow.ip_space_pricing.remove(price.id) is True
        assert await uow.ip_spaces.remove(b.id) is True
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.ip_spaces.get(b.id) is None
        assert await uow.ip_space_pricing.get(price.id) is None


async def test_host_secrets_stay_sealed_after_an_update(backend: Backend) -> None:
    w = await stored_world(backend.factory)
    async with backend.factory() as uow:
        await uow.hosts.update(attrs.evolve(w.host, api_token="new-token", name="h2"))
        await uow.commit()
    async with backend.factory() as uow:
        host = await uow.hosts.get(w.host.id)
    assert host is not None and host.api_token == "new-token" and host.name == "h2"
    if backend.engine is None:
        pytest.skip("memory keeps records, not rows")
    async with backend.engine.connect() as conn:
        raw = (await conn.execute(select(tables.vm_host.c.api_token))).scalar_one()
    assert raw.startswith("ENC:") and "new-token" not in raw
