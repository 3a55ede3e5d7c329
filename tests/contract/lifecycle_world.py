"""The worker tests' shop-plus-worker world built over memory, SQLite or MariaDB storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, cast

import attrs
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.memory.vm_state import MemoryVmStateCache
from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.uow import SqlUnitOfWorkFactory
from adapters.notify.memory import RecordingNotifier
from adapters.queue.memory import InProcessQueue
from adapters.vmhost.dummy import DummyVmHost
from app.worker.context import HostRetry, WorkerDeps
from app.worker.jobs import build_handlers
from domain.enums import (
    DiskInterface,
    DiskType,
    InternetRegistry,
    IntervalType,
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
    OsImage,
    PaymentMethodConfig,
    Region,
    SshKey,
    User,
    VmTemplate,
)
from ports.storage import UnitOfWorkFactory
from tests.contract.storage_backends import TEST_KEY, Database
from tests.unit.billing.world import PLAN_EUR_CENTS, START, new_shop
from tests.unit.worker.world import CountingHost, OneHost, World, no_sleep


async def empty_tables(engine: AsyncEngine, kind: str) -> None:
    """Delete every row and restart the ids at 1 (the shop's seed relies on ids 1, 2 …).

    MariaDB: TRUNCATE with foreign-key checks off (~0.2 s for all tables). SQLite: the
    tables have no AUTOINCREMENT, so an emptied table hands out rowid 1 again.
    """
    async with engine.begin() as conn:
        if kind == "mysql":
            await conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))
            for table in tables.metadata.sorted_tables:
                await conn.execute(text(f"TRUNCATE TABLE `{table.name}`"))
            await conn.execute(text("SET FOREIGN_KEY_CHECKS=1"))
        else:
            for table in reversed(tables.metadata.sorted_tables):
                await conn.execute(delete(table))


def sql_factory(engine: AsyncEngine) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(engine, AesGcmSecretBox(TEST_KEY))


async def seed_catalogue(factory: UnitOfWorkFactory) -> None:
    """The billing shop's catalogue, an IPv4 range for VMs and the IP space ranges are sold from."""
    await seed_shop(factory)
    async with factory() as uow:
        await uow.ip_ranges.add(
            IpRange(id=0, cidr="10.0.0.0/29", enabled=True, region_id=1, gateway="10.0.0.1/29")
        )
        await uow.ip_spaces.add(
            AvailableIpSpace(
                id=0,
                company_id=1,
                cidr="203.0.113.0/24",
                min_prefix_size=24,
                max_prefix_size=29,
                registry=InternetRegistry.RIPE,
                created=START,
                updated=START,
            )
        )
        await uow.commit()


def worker_over(world: World, factory: UnitOfWorkFactory) -> WorkerDeps:
    """A second worker on its own unit-of-work factory, sharing the world's host and notifier."""
    return attrs.evolve(world.deps, uow_factory=factory, queue=InProcessQueue())


async def world_over(factory: UnitOfWorkFactory) -> World:
    """`tests.unit.worker.world.new_world`, but over `factory` (seeded here)."""
    await seed_catalogue(factory)
    shop = attrs.evolve(await new_shop(), factory=cast(Any, factory))
    host = CountingHost(DummyVmHost(None, shop.clock))
    notifier = RecordingNotifier()
    queue = InProcessQueue()
    states = MemoryVmStateCache()
    deps = WorkerDeps(
        uow_factory=factory,
        clock=shop.clock,
        hosts=OneHost(host),
        queue=queue,
        notifier=notifier,
        delete_after_days=3,
        public_url="https://api.lnvps.test",
        states=states,
        retry=HostRetry(sleep=no_sleep),
    )
    return World(
        shop=shop,
        host=host,
        notifier=notifier,
        queue=queue,
        states=states,
        deps=deps,
        handlers=build_handlers(deps),
    )


async def seed_shop(factory: UnitOfWorkFactory) -> None:
    """`tests.unit.billing.world.seed` with the hidden image as Debian 11 (SQL: images unique)."""
    async with factory() as uow:
        await uow.companies.add(Company(id=0, created=START, name="LNVPS"))
        await uow.regions.add(Region(id=0, name="IE", enabled=True, company_id=1))
        host = await uow.hosts.add(
            Host(
                id=0,
                kind=VmHostKind.DUMMY,
                region_id=1,
                name="h1",
                ip="10.0.0.1",
                cpu=16,
                memory=64 * GIB,
                enabled=True,
                api_token="",
            )
        )
        await uow.host_disks.add(
            HostDisk(
                id=0,
                host_id=host.id,
                name="nvme",
                size=2048 * GIB,
                kind=DiskType.SSD,
                interface=DiskInterface.PCIE,
                enabled=True,
            )
        )
        for enabled, version in ((True, "12"), (False, "11")):
            await uow.images.add(
                OsImage(
                    id=0,
                    distribution=OsDistribution.DEBIAN,
                    flavour="server",
                    version=version,
                    enabled=enabled,
                    release_date=START,
                    url="https://example.invalid/debian.img",
                )
            )
        for pubkey, country in ((b"a" * 32, "IE"), (b"b" * 32, None)):
            user = await uow.users.add(
                User(id=0, pubkey=pubkey, created=START, country_code=country)
            )
            await uow.ssh_keys.add(
                SshKey(id=0, name="k", user_id=user.id, created=START, key_data="ssh-ed25519 AAA")
            )
        await uow.cost_plans.add(
            CostPlan(
                id=0,
                name="tiny",
                created=START,
                amount=PLAN_EUR_CENTS,
                currency="EUR",
                interval_amount=1,
                interval_type=IntervalType.MONTH,
            )
        )
        await uow.templates.add(
            VmTemplate(
                id=0,
                name="Tiny",
                enabled=True,
                created=START,
                expires=None,
                cpu=2,
                memory=2 * GIB,
                disk_size=64 * GIB,
                disk_type=DiskType.SSD,
                disk_interface=DiskInterface.PCIE,
                cost_plan_id=1,
                region_id=1,
            )
        )
        pricing = await uow.custom_pricing.add(
            CustomPricing(
                id=0,
                name="Custom IE",
                enabled=True,
                created=START,
                expires=None,
                region_id=1,
                currency="EUR",
                cpu_cost=200,
                memory_cost=100,
                ip4_cost=0,
                ip6_cost=0,
                max_cpu=8,
                max_memory=16 * GIB,
            )
        )
        await uow.custom_pricing.add_disk(
            CustomPricingDisk(
                id=0,
                pricing_id=pricing.id,
                kind=DiskType.SSD,
                interface=DiskInterface.PCIE,
                cost=50,
                max_disk_size=512 * GIB,
            )
        )
        await uow.payment_methods.add(
            PaymentMethodConfig(
                id=0,
                company_id=1,
                payment_method=PaymentMethod.REVOLUT,
                name="revolut",
                enabled=True,
                provider_type="revolut",
                config={},
                created=START,
                modified=START,
                processing_fee_rate=Decimal("2.8"),
                processing_fee_base=20,
                processing_fee_currency="EUR",
            )
        )
        await uow.commit()


@asynccontextmanager
async def engine_on(database: Database) -> AsyncIterator[AsyncEngine]:
    """A fresh engine (own connection pool) on the module's database, disposed on exit."""
    assert database.url is not None
    engine = create_engine(database.url)
    try:
        yield engine
    finally:
        await engine.dispose()
