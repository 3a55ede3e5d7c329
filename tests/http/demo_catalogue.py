"""The demo catalogue the user-API tests run against: one company, Dublin, plans, pricing, IPs."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from domain.enums import (
    CpuArch,
    CpuMfg,
    DiskInterface,
    DiskType,
    InternetRegistry,
    IntervalType,
    IpRangeAllocationMode,
    OsDistribution,
    PaymentMethod,
    VmHostKind,
)
from domain.model import (
    GIB,
    AvailableIpSpace,
    Company,
    CostPlan,
    CustomPricing,
    CustomPricingDisk,
    Host,
    HostDisk,
    IpRange,
    IpSpacePricing,
    OsImage,
    PaymentMethodConfig,
    Region,
    VmTemplate,
)
from ports.storage import UnitOfWorkFactory


@attrs.frozen(kw_only=True)
class Demo:
    """Ids of the seeded rows. Listed: `tiny`, `yearly`, `custom`, `ip4_space`, `ip6_space`.

    Not listed: `huge` (no host has 64 CPUs), `retired` (disabled), `closed` (disabled region),
    `old_custom` (disabled), `reserved_space`; image `centos` is disabled.
    """

    company: int
    region: int
    closed_region: int
    host: int
    ssd: int
    hdd: int
    ubuntu: int
    debian: int
    centos: int
    tiny_plan: int
    yearly_plan: int
    tiny: int
    yearly: int
    huge: int
    retired: int
    closed: int
    custom: int
    old_custom: int
    ip4_space: int
    ip4_tier_24: int
    ip4_tier_23: int
    ip6_space: int
    ip6_tier: int
    reserved_space: int
    reserved_tier: int
    ip4_range: int
    ip6_range: int


async def seed_demo(store: UnitOfWorkFactory, now: datetime) -> Demo:
    """Write the demo catalogue in one transaction and return its ids."""
    created = now - timedelta(days=30)
    async with store() as uow:
        company = await uow.companies.add(Company(id=0, created=created, name="Demo Hosting Ltd"))
        region = await uow.regions.add(
            Region(id=0, name="Dublin", enabled=True, company_id=company.id)
        )
        closed_region = await uow.regions.add(
            Region(id=0, name="Closed", enabled=False, company_id=company.id)
        )
        host = await uow.hosts.add(
            Host(
                id=0,
                kind=VmHostKind.DUMMY,
                region_id=region.id,
                name="dub1",
                ip="10.0.0.1",
                cpu=16,
                memory=64 * GIB,
                enabled=True,
                api_token="",
                cpu_mfg=CpuMfg.AMD,
                cpu_arch=CpuArch.X86_64,
                cpu_features=("AVX2", "AES"),
            )
        )
        closed_host = await uow.hosts.add(
            Host(
                id=0,
                kind=VmHostKind.DUMMY,
                region_id=closed_region.id,
                name="old1",
                ip="10.0.1.1",
                cpu=16,
                memory=64 * GIB,
                enabled=True,
                api_token="",
            )
        )
        ssd = await uow.host_disks.add(
            HostDisk(
                id=0,
                host_id=host.id,
                name="nvme",
                size=2000 * GIB,
                kind=DiskType.SSD,
                interface=DiskInterface.PCIE,
                enabled=True,
            )
        )
        hdd = await uow.host_disks.add(
            HostDisk(
                id=0,
                host_id=host.id,
                name="sata",
                size=4000 * GIB,
                kind=DiskType.HDD,
                interface=DiskInterface.SATA,
                enabled=True,
            )
        )
        await uow.host_disks.add(
            HostDisk(
                id=0,
                host_id=closed_host.id,
                name="nvme",
                size=2000 * GIB,
                kind=DiskType.SSD,
                interface=DiskInterface.PCIE,
                enabled=True,
            )
        )
        release = datetime(2024, 4, 25, tzinfo=now.tzinfo)
        ubuntu = await uow.images.add(
            OsImage(
                id=0,
                distribution=OsDistribution.UBUNTU,
                flavour="Server",
                version="24.04",
                enabled=True,
                release_date=release,
                url="https://img/ubuntu.img",
                default_username="ubuntu",
            )
        )
        debian = await uow.images.add(
            OsImage(
                id=0,
                distribution=OsDistribution.DEBIAN,
                flavour="Server",
                version="12",
                enabled=True,
                release_date=release - timedelta(days=300),
                url="https://img/debian.img",
            )
        )
        centos = await uow.images.add(
            OsImage(
                id=0,
                distribution=OsDistribution.CENTOS,
                flavour="Stream",
                version="9",
                enabled=False,
                release_date=release,
                url="https://img/centos.img",
            )
        )
        tiny_plan = await uow.cost_plans.add(
            CostPlan(
                id=0,
                name="Tiny",
                created=created,
                amount=270,
                currency="EUR",
                interval_amount=1,
                interval_type=IntervalType.MONTH,
            )
        )
        big_plan = await uow.cost_plans.add(
            CostPlan(
                id=0,
                name="Huge",
                created=created,
                amount=50_000,
                currency="USD",
                interval_amount=1,
                interval_type=IntervalType.MONTH,
            )
        )
        yearly_plan = await uow.cost_plans.add(
            CostPlan(
                id=0,
                name="Yearly",
                created=created,
                amount=1_000_000_000,
                currency="BTC",
                interval_amount=1,
                interval_type=IntervalType.YEAR,
            )
        )

        def template(name: str, plan: CostPlan, cpu: int, **kw: object) -> VmTemplate:
            fields: dict[str, object] = dict(
                id=0,
                name=name,
                enabled=True,
                created=created,
                expires=None,
                cpu=cpu,
                memory=GIB,
                disk_size=40 * GIB,
                disk_type=DiskType.SSD,
                disk_interface=DiskInterface.PCIE,
                cost_plan_id=plan.id,
                region_id=region.id,
            )
            fields.update(kw)
            return VmTemplate(**fields)  # type: ignore[arg-type]

        tiny = await uow.templates.add(template("Tiny", tiny_plan, 1))
        yearly = await uow.templates.add(
            template(
                "Yearly",
                yearly_plan,
                2,
                memory=4 * GIB,
                disk_size=100 * GIB,
                disk_type=DiskType.HDD,
                disk_interface=DiskInterface.SATA,
                expires=now + timedelta(days=365),
                cpu_mfg=CpuMfg.AMD,
                cpu_arch=CpuArch.X86_64,
                cpu_features=("AVX2",),
            )
        )
        huge = await uow.templates.add(template("Huge", big_plan, 64))
        retired = await uow.templates.add(template("Retired", tiny_plan, 1, enabled=False))
        closed = await uow.templates.add(
            template("Closed", tiny_plan, 1, region_id=closed_region.id)
        )
        custom = await uow.custom_pricing.add(
            CustomPricing(
                id=0,
                name="Dublin custom",
                enabled=True,
                created=created,
                expires=None,
                region_id=region.id,
                currency="EUR",
                cpu_cost=100,
                memory_cost=50,
                ip4_cost=200,
                ip6_cost=10,
                min_cpu=1,
                max_cpu=32,
                min_memory=GIB,
                max_memory=128 * GIB,
            )
        )
        await uow.custom_pricing.add_disk(
            CustomPricingDisk(
                id=0,
                pricing_id=custom.id,
                kind=DiskType.SSD,
                interface=DiskInterface.PCIE,
                cost=5,
                min_disk_size=10 * GIB,
                max_disk_size=1000 * GIB,
            )
        )
        await uow.custom_pricing.add_disk(
            CustomPricingDisk(
                id=0,
                pricing_id=custom.id,
                kind=DiskType.HDD,
                interface=DiskInterface.SATA,
                cost=2,
                min_disk_size=10 * GIB,
                max_disk_size=8000 * GIB,
            )
        )
        old_custom = await uow.custom_pricing.add(
            attrs.evolve(custom, id=0, name="Old", enabled=False)
        )
        for method, name, enabled, fee in (
            (PaymentMethod.LIGHTNING, "LND", True, None),
            (PaymentMethod.REVOLUT, "Revolut", True, (Decimal("1.0"), 20, "EUR")),
            (PaymentMethod.PAYPAL, "PayPal", False, None),
        ):
            await uow.payment_methods.add(
                PaymentMethodConfig(
                    id=0,
                    company_id=company.id,
                    payment_method=method,
                    name=name,
                    enabled=enabled,
                    provider_type=name.lower(),
                    config={},
                    created=created,
                    modified=created,
                    processing_fee_rate=fee[0] if fee else None,
                    processing_fee_base=fee[1] if fee else None,
                    processing_fee_currency=fee[2] if fee else None,
                )
            )

        def space(cidr: str, low: int, high: int, days: int, **kw: object) -> AvailableIpSpace:
            fields: dict[str, object] = dict(
                id=0,
                company_id=company.id,
                cidr=cidr,
                min_prefix_size=low,
                max_prefix_size=high,
                registry=InternetRegistry.RIPE,
                created=created + timedelta(days=days),
                updated=created,
            )
            fields.update(kw)
            return AvailableIpSpace(**fields)  # type: ignore[arg-type]

        def tier(space_id: int, prefix: int, price: int, setup: int, cur: str) -> IpSpacePricing:
            return IpSpacePricing(
                id=0,
                available_ip_space_id=space_id,
                prefix_size=prefix,
                price_per_month=price,
                created=created,
                updated=created,
                currency=cur,
                setup_fee=setup,
            )

        # the spaces lie outside the region's VM address ranges below, as the admin API
        # requires: a block sold from a VM range would hold other customers' VMs' addresses
        ip4 = await uow.ip_spaces.add(space("185.18.224.0/22", 24, 22, 1))
        ip4_24 = await uow.ip_space_pricing.add(tier(ip4.id, 24, 15_000, 5_000, "EUR"))
        ip4_23 = await uow.ip_space_pricing.add(tier(ip4.id, 23, 28_000, 5_000, "EUR"))
        ip6 = await uow.ip_spaces.add(
            space("2a13:2c1::/32", 48, 40, 2, registry=InternetRegistry.ARIN)
        )
        ip6_tier = await uow.ip_space_pricing.add(tier(ip6.id, 48, 1_000, 0, "USD"))
        reserved = await uow.ip_spaces.add(space("10.0.0.0/16", 24, 16, 3, is_reserved=True))
        reserved_tier = await uow.ip_space_pricing.add(tier(reserved.id, 24, 100, 0, "EUR"))
        ip4_range = await uow.ip_ranges.add(
            IpRange(
                id=0,
                cidr="185.18.221.0/25",
                enabled=True,
                region_id=region.id,
                gateway="185.18.221.1",
            )
        )
        ip6_range = await uow.ip_ranges.add(
            IpRange(
                id=0,
                cidr="2a13:2c0::/64",
                enabled=True,
                region_id=region.id,
                gateway="fe80::1",
                allocation_mode=IpRangeAllocationMode.SLAAC_EUI64,
            )
        )
        await uow.commit()
    return Demo(
        company=company.id,
        region=region.id,
        closed_region=closed_region.id,
        host=host.id,
        ssd=ssd.id,
        hdd=hdd.id,
        ubuntu=ubuntu.id,
        debian=debian.id,
        centos=centos.id,
        tiny_plan=tiny_plan.id,
        yearly_plan=yearly_plan.id,
        tiny=tiny.id,
        yearly=yearly.id,
        huge=huge.id,
        retired=retired.id,
        closed=closed.id,
        custom=custom.id,
        old_custom=old_custom.id,
        ip4_space=ip4.id,
        ip4_tier_24=ip4_24.id,
        ip4_tier_23=ip4_23.id,
        ip6_space=ip6.id,
        ip6_tier=ip6_tier.id,
        reserved_space=reserved.id,
        reserved_tier=reserved_tier.id,
        ip4_range=ip4_range.id,
        ip6_range=ip6_range.id,
    )
