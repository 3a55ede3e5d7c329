"""r17 on SQLite and MariaDB: a CIDR may be recorded twice (sold again after its range ended);
the downgrade brings the UNIQUE key back, and refuses while a CIDR was sold twice."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.migrations import R3_ADD_EMAIL_HASH, R16_NEVER_PAID_SCAN_INDEX
from adapters.mysql.migrations.data_guard import DowngradeRefused
from adapters.mysql.schema_upgrade import downgrade_database, upgrade_database
from domain.enums import InternetRegistry, SubscriptionType
from domain.model import AvailableIpSpace, Company, User
from tests.contract.lifecycle_world import sql_factory
from tests.contract.storage_backends import at
from tests.contract.test_adoption import _lnvps_database

CIDR = "198.51.100.0/24"


async def _sold_once(url: str) -> None:
    """A space, an IP-range subscription and one range of CIDR, ended."""
    engine = create_engine(url)
    try:
        factory = sql_factory(engine)
        async with factory() as uow:
            company = await uow.companies.add(Company(id=0, created=at(1), name="ACME"))
            user = await uow.users.add(User(id=0, pubkey=b"m" * 32, created=at(1)))
            await uow.ip_spaces.add(
                AvailableIpSpace(
                    id=0,
                    company_id=company.id,
                    cidr=CIDR,
                    min_prefix_size=24,
                    max_prefix_size=24,
                    registry=InternetRegistry.RIPE,
                    created=at(1),
                    updated=at(1),
                )
            )
            await uow.commit()
        async with engine.begin() as conn:  # the r16 columns only (r18 adds one)
            sub = tables.subscription
            await conn.execute(
                sa.insert(sub).values(
                    user_id=user.id, company_id=company.id, name="s", created=at(1), currency="EUR"
                )
            )
            sub_id = (await conn.execute(sa.select(sub.c.id))).scalar_one()
            await conn.execute(
                sa.insert(tables.subscription_line_item).values(
                    subscription_id=sub_id,
                    subscription_type=SubscriptionType.IP_RANGE,
                    name="r",
                    amount=1,
                )
            )
        await _sell(url, is_active=False)
    finally:
        await engine.dispose()


async def _sell(url: str, *, is_active: bool = True) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            space = (await conn.execute(sa.select(tables.available_ip_space.c.id))).scalar_one()
            item = (await conn.execute(sa.select(tables.subscription_line_item.c.id))).scalar_one()
            await conn.execute(
                sa.insert(tables.ip_range_subscription).values(
                    subscription_line_item_id=item,
                    available_ip_space_id=space,
                    created=at(2),
                    cidr=CIDR,
                    is_active=is_active,
                    started_at=at(2),
                    ended_at=None if is_active else at(3),
                )
            )
    finally:
        await engine.dispose()


async def _forget_the_second_sale(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            rows = tables.ip_range_subscription
            newest = sa.select(sa.func.max(rows.c.id)).scalar_subquery()
            await conn.execute(sa.delete(rows).where(rows.c.id == newest))
    finally:
        await engine.dispose()


async def test_r17_lets_a_block_be_sold_again_and_is_undone_only_without_twins(
    db_url: str,
) -> None:
    await upgrade_database(db_url, R16_NEVER_PAID_SCAN_INDEX)
    await _sold_once(db_url)
    with pytest.raises(IntegrityError):
        await _sell(db_url)  # LNVPS's UNIQUE key: an ended range's block can never be sold

    await upgrade_database(db_url)
    await _sell(db_url)  # the block is sold again; the ended row keeps its history

    with pytest.raises(DowngradeRefused, match="CIDR sold more than once"):
        await downgrade_database(db_url, R16_NEVER_PAID_SCAN_INDEX)
    await _forget_the_second_sale(db_url)
    await downgrade_database(db_url, R16_NEVER_PAID_SCAN_INDEX)
    with pytest.raises(IntegrityError):
        await _sell(db_url)


async def test_an_adopted_lnvps_database_loses_its_unique_key_on_cidr(mysql_url: str) -> None:
    """LNVPS names the key after its column (`cidr ... UNIQUE`), not as r1 does."""
    await _lnvps_database(mysql_url, R3_ADD_EMAIL_HASH)
    assert await _unique_on_cidr(mysql_url)
    await upgrade_database(mysql_url)
    assert await _unique_on_cidr(mysql_url) == []


async def _unique_on_cidr(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("ip_range_subscription"))
    finally:
        await engine.dispose()
    return [str(i["name"]) for i in indexes if i["unique"] and i["column_names"] == ["cidr"]]
