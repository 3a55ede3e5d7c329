"""The demo catalogue is seeded once, on memory and on the SQL backends."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.memory.storage import MemoryUnitOfWorkFactory
from adapters.mysql.engine import create_engine
from adapters.mysql.uow import SqlUnitOfWorkFactory
from app.queries.catalogue import list_payment_methods
from domain.enums import IntervalType, PaymentMethod
from lnvps.demo import DEMO_OFFERS, seed_demo_catalogue
from ports.storage import UnitOfWorkFactory

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


async def _check_seeded_once(factory: UnitOfWorkFactory) -> None:
    assert await seed_demo_catalogue(factory, NOW) is True
    assert await seed_demo_catalogue(factory, NOW) is False
    async with factory() as uow:
        templates = await uow.templates.list_all()
        plans = {p.id: p for p in await uow.cost_plans.list_all()}
        regions = await uow.regions.list_all()
        pricing = await uow.custom_pricing.list_by_region(regions[0].id)
        disks = await uow.custom_pricing.list_disks(pricing[0].id)
        ranges = await uow.ip_ranges.list_by_region(regions[0].id)
        methods = await uow.payment_methods.list_all()
    assert [(m.payment_method, m.enabled, m.company_id) for m in methods] == [
        (PaymentMethod.LIGHTNING, True, regions[0].company_id)
    ]
    listing = await list_payment_methods(factory)
    assert listing.lightning and [c.id for c in listing.configs] == [methods[0].id]
    assert [t.name for t in templates] == [o[0] for o in DEMO_OFFERS]
    daily = plans[templates[0].cost_plan_id]
    assert (daily.interval_type, daily.amount, daily.currency) == (IntervalType.DAY, 10, "EUR")
    assert len(disks) == 1 and len(ranges) == 2


async def test_demo_catalogue_is_seeded_once_in_memory() -> None:
    await _check_seeded_once(MemoryUnitOfWorkFactory())


async def test_demo_catalogue_is_seeded_once_in_sql(migrated_db_url: str) -> None:
    engine = create_engine(migrated_db_url)
    try:
        await _check_seeded_once(SqlUnitOfWorkFactory(engine, AesGcmSecretBox(os.urandom(32))))
    finally:
        await engine.dispose()
