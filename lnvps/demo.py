"""The demo catalogue a fresh embedded-default server seeds on first start."""

from __future__ import annotations

from datetime import datetime

from domain.enums import (
    DiskInterface,
    DiskType,
    IntervalType,
    IpRangeAllocationMode,
    OsDistribution,
    PaymentMethod,
    VmHostKind,
)
from domain.model import (
    GIB,
    Company,
    CostPlan,
    CustomPricing,
    CustomPricingDisk,
    Host,
    HostDisk,
    IpRange,
    OsImage,
    PaymentMethodConfig,
    Region,
    VmTemplate,
)
from ports.storage import UnitOfWork, UnitOfWorkFactory

#: (name, cpu, memory GiB, disk GiB, price in EUR cents, interval) of the standard offers.
DEMO_OFFERS = (
    ("Demo Daily", 1, 1, 20, 10, IntervalType.DAY),
    ("Tiny", 1, 1, 40, 250, IntervalType.MONTH),
    ("Small", 2, 2, 80, 500, IntervalType.MONTH),
    ("Medium", 4, 8, 160, 1500, IntervalType.MONTH),
)

#: (distribution, version, cloud image URL)
DEMO_IMAGES = (
    (
        OsDistribution.DEBIAN,
        "12",
        "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2",
    ),
    (
        OsDistribution.UBUNTU,
        "24.04",
        "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img",
    ),
)


async def _company_id(uow: UnitOfWork, now: datetime) -> int:
    companies = await uow.companies.list_all()
    if companies:
        return companies[0].id
    company = await uow.companies.add(
        Company(id=0, created=now, name="LNVPS Demo", email="admin@example.com")
    )
    return company.id


#: the demo's Lightning config row. Only listed (and read for fees): the node itself comes from
#: the settings (`lightning.lnd`, else the dev rail), as in the reference.
DEMO_LIGHTNING_CONFIG = {
    "type": "lnd",
    "url": "dev-rail://lnvps-dev-lightning.json",
    "cert_path": "",
    "macaroon_path": "",
}


async def _seed_payment_methods(uow: UnitOfWork, company_id: int, now: datetime) -> None:
    """Lightning, so `GET /api/v1/payment/methods` offers lightning, nwc and lnurl (api.md §6.6)
    and the LNVPS web front end can pay on a fresh demo server."""
    await uow.payment_methods.add(
        PaymentMethodConfig(
            id=0,
            company_id=company_id,
            payment_method=PaymentMethod.LIGHTNING,
            name="Lightning (dev rail)",
            enabled=True,
            provider_type="lnd",
            config=dict(DEMO_LIGHTNING_CONFIG),
            created=now,
            modified=now,
            supported_currencies=("BTC",),
        )
    )


async def seed_demo_catalogue(uow_factory: UnitOfWorkFactory, now: datetime) -> bool:
    """Seed a region, a dummy host, IP ranges, images, offers, custom pricing and a Lightning
    payment-method config once.

    Returns False (and writes nothing) when the database already has templates, so an
    operator's own catalogue is never touched.
    """
    async with uow_factory() as uow:
        if await uow.templates.list_all():
            return False
        company_id = await _company_id(uow, now)
        await _seed_payment_methods(uow, company_id, now)
        region = await uow.regions.add(
            Region(id=0, name="Demo region (dummy host)", enabled=True, company_id=company_id)
        )
        host = await uow.hosts.add(
            Host(
                id=0,
                kind=VmHostKind.DUMMY,
                region_id=region.id,
                name="dummy-1",
                ip="127.0.0.1",
                cpu=64,
                memory=256 * GIB,
                enabled=True,
                api_token="",
            )
        )
        await uow.host_disks.add(
            HostDisk(
                id=0,
                host_id=host.id,
                name="local-ssd",
                size=16_384 * GIB,
                kind=DiskType.SSD,
                interface=DiskInterface.PCIE,
                enabled=True,
            )
        )
        for cidr, gateway in (("192.0.2.0/24", "192.0.2.1"), ("2001:db8::/64", "2001:db8::1")):
            await uow.ip_ranges.add(
                IpRange(
                    id=0,
                    cidr=cidr,
                    enabled=True,
                    region_id=region.id,
                    gateway=gateway,
                    allocation_mode=IpRangeAllocationMode.SEQUENTIAL,
                )
            )
        for distribution, version, url in DEMO_IMAGES:
            await uow.images.add(
                OsImage(
                    id=0,
                    distribution=distribution,
                    flavour="server",
                    version=version,
                    enabled=True,
                    release_date=now,
                    url=url,
                )
            )
        for name, cpu, mem, disk, cents, unit in DEMO_OFFERS:
            plan = await uow.cost_plans.add(
                CostPlan(
                    id=0,
                    name=name,
                    created=now,
                    amount=cents,
                    currency="EUR",
                    interval_amount=1,
                    interval_type=unit,
                )
            )
            await uow.templates.add(
                VmTemplate(
                    id=0,
                    name=name,
                    enabled=True,
                    created=now,
                    expires=None,
                    cpu=cpu,
                    memory=mem * GIB,
                    disk_size=disk * GIB,
                    disk_type=DiskType.SSD,
                    disk_interface=DiskInterface.PCIE,
                    cost_plan_id=plan.id,
                    region_id=region.id,
                )
            )
        pricing = await uow.custom_pricing.add(
            CustomPricing(
                id=0,
                name="Demo custom",
                enabled=True,
                created=now,
                expires=None,
                region_id=region.id,
                currency="EUR",
                cpu_cost=150,
                memory_cost=50,
                ip4_cost=50,
                ip6_cost=5,
                min_cpu=1,
                max_cpu=16,
                min_memory=GIB,
                max_memory=64 * GIB,
            )
        )
        await uow.custom_pricing.add_disk(
            CustomPricingDisk(
                id=0,
                pricing_id=pricing.id,
                kind=DiskType.SSD,
                interface=DiskInterface.PCIE,
                cost=5,
                min_disk_size=10 * GIB,
                max_disk_size=1024 * GIB,
            )
        )
        await uow.commit()
    return True
