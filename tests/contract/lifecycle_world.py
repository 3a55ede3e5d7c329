"""The worker tests' shop-plus-worker world built over memory, SQLite or MariaDB storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import attrs
import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.memory.storage import MemoryUnitOfWorkFactory
from adapters.memory.vm_state import MemoryVmStateCache
from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.uow import SqlUnitOfWorkFactory
from adapters.notify.memory import RecordingNotifier
from adapters.queue.memory import InProcessQueue
from adapters.vmhost.dummy import DummyVmHost
from app.autorenew import NwcAutoRenewer
from app.billing.credit_settle import completion_settle
from app.billing.reserved import lapsed_unpaid_vms
from app.worker.context import HostRetry, WorkerDeps
from app.worker.jobs import build_handlers
from domain.enums import (
    InternetRegistry,
)
from domain.model import (
    AvailableIpSpace,
    Vm,
)
from domain.money import Currency
from ports.storage import UnitOfWork, UnitOfWorkFactory
from tests.contract.storage_backends import (
    LOST_KEY,
    TEST_KEY,
    Database,
    engine_for,
    tables_with_rows,
)
from tests.unit.billing.fakes import FreshRates
from tests.unit.billing.world import START, Shop, new_shop, seed
from tests.unit.worker.world import CountingHost, OneHost, World, no_sleep


async def empty_tables(engine: AsyncEngine, kind: str) -> None:
    """Delete every row and restart the ids at 1 (the shop's seed relies on ids 1, 2 …).

    MariaDB: TRUNCATE with foreign-key checks off, of the tables a test touched only (~6 ms
    to find them; each TRUNCATE costs ~6 ms, ~0.25 s for all tables): a table with a row or
    an auto-increment counter past 1, which an insert leaves even when rolled back or
    deleted. SQLite: the tables have no AUTOINCREMENT, so an emptied table hands out rowid 1
    again.
    """
    async with engine.begin() as conn:
        if kind == "mysql":
            await conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))
            for name in await _touched_tables(conn):
                await conn.execute(text(f"TRUNCATE TABLE `{name}`"))
            await conn.execute(text("SET FOREIGN_KEY_CHECKS=1"))
        else:
            filled = await tables_with_rows(conn)
            for table in reversed(tables.metadata.sorted_tables):
                if table.name in filled:
                    await conn.execute(delete(table))


async def _touched_tables(conn: AsyncConnection) -> set[str]:
    """The MariaDB tables that differ from a freshly truncated one: with a row, or with an
    auto-increment counter past 1."""
    with_rows = " UNION ALL ".join(
        f"SELECT '{table.name}' FROM DUAL WHERE EXISTS (SELECT 1 FROM `{table.name}`)"
        for table in tables.metadata.sorted_tables
    )
    counted = (
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = DATABASE() AND auto_increment > 1"
    )
    found = await conn.execute(text(f"{with_rows} UNION {counted}"))
    return {str(name) for name in found.scalars()} & set(tables.metadata.tables)


def sql_factory(engine: AsyncEngine) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(engine, AesGcmSecretBox(TEST_KEY))


async def seed_catalogue(factory: UnitOfWorkFactory) -> None:
    """The billing shop's catalogue (its IPv4 range for VMs too) and the IP space ranges are sold
    from."""
    await seed(factory)
    async with factory() as uow:
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


@asynccontextmanager
async def engine_on(database: Database) -> AsyncIterator[AsyncEngine]:
    """A fresh engine (own connection pool) on the module's database, disposed on exit: a
    second pool beside the test's own (`engine_for`), as a second worker process has."""
    assert database.url is not None
    engine = create_engine(database.url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def world(database: Database) -> AsyncIterator[World]:
    """The worker world over an empty, freshly seeded store of the module's backend (the
    module's `database` fixture); a test module takes it as `world = lifecycle_world.world`."""
    if database.url is None:
        yield await world_over(MemoryUnitOfWorkFactory())
        return
    async with engine_for(database) as engine:
        await empty_tables(engine, database.kind)
        yield await world_over(sql_factory(engine))


def world_with_rails(*ports: str) -> Any:
    """A `world` fixture whose worker takes the shop's rails as the named ports
    (`payment_canceller`, `order_rails`), as the container wires them; a test module takes
    it as `world = lifecycle_world.world_with_rails("payment_canceller")`."""

    @pytest.fixture
    async def world(database: Database) -> AsyncIterator[World]:
        def wired(w: World) -> World:
            rails: dict[str, Any] = {port: w.shop.rails for port in ports}
            w.deps = attrs.evolve(w.deps, **rails)
            w.handlers = build_handlers(w.deps)
            return w

        if database.url is None:
            yield wired(await world_over(MemoryUnitOfWorkFactory()))
            return
        async with engine_for(database) as engine:
            await empty_tables(engine, database.kind)
            yield wired(await world_over(sql_factory(engine)))

    return world


def notice_titles(world: World, user_id: int) -> tuple[list[str], list[str]]:
    """The titles of the notices sent to the user and to the admins, in order."""
    user = [n.title for n in world.notifier.to_user(user_id)]
    return user, [n.title for n in world.notifier.to_admins()]


@pytest.fixture
async def shop(database: Database) -> AsyncIterator[Shop]:
    """The billing shop over an empty, freshly seeded store of the module's backend; a test
    module takes it as `shop = lifecycle_world.shop`."""
    if database.url is None:
        yield await new_shop()
        return
    async with engine_for(database) as engine:
        await empty_tables(engine, database.kind)
        factory = sql_factory(engine)
        await seed(factory)
        yield attrs.evolve(await new_shop(), factory=cast(Any, factory))


def with_gbp(shop: Shop, per_btc: Decimal) -> Shop:
    """The shop with GBP at `per_btc` beside the fixed rates (EUR at 100 000 per BTC)."""
    return attrs.evolve(shop, rates=FreshRates(shop.clock, others={Currency.GBP: per_btc}))


async def plan_moved_to_gbp(shop: Shop) -> None:
    """The operator moves the shop's EUR plan to GBP, same figure (1.32): a subscription
    sold on it stays in EUR, so its balance and its price are in two currencies."""
    async with shop.factory() as uow:
        plan = await uow.cost_plans.get(1)
        assert plan is not None and plan.currency == "EUR"
        await uow.cost_plans.update(attrs.evolve(plan, currency="GBP"))
        await uow.commit()


async def reserving_vms(uow: UnitOfWork, now: datetime) -> list[Vm]:
    """The D25 rule VM by VM, the oracle `reserved_usage`'s sums are checked against: every
    live VM but the lapsed never-paid orders."""
    lapsed = {vm.id for vm in await lapsed_unpaid_vms(uow, now)}
    return [vm for vm in await uow.vms.list_active() if vm.id not in lapsed]


class RecordingWallet:
    """An NWC wallet that pays whatever it is asked to (and records it)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def pay_invoice(self, connection_string: str, bolt11: str) -> str:
        self.asked.append(bolt11)
        return "cd" * 32


def with_renewer(world: World, wallet: RecordingWallet | None = None) -> RecordingWallet:
    """The worker auto-renews through `NwcAutoRenewer` paying from `wallet` (by default one
    that pays), account credit first, as wired."""
    shop = world.shop
    wallet = wallet or RecordingWallet()
    settle = completion_settle(shop.factory, shop.clock, shop.rails, world.queue)
    renewer = NwcAutoRenewer(
        shop.factory, shop.clock, shop.rails, shop.rates, shop.tax_rates, wallet, settle
    )
    world.deps = attrs.evolve(world.deps, auto_renewer=renewer)
    world.handlers = build_handlers(world.deps)
    return wallet


async def seal_wallet_with_a_lost_key(world: World, user_id: int, wallet: str) -> None:
    """The user's wallet string as sealed under another key than the storage's (`LOST_KEY`),
    written to the column past the storage's own sealing: a wallet that can never be read."""
    factory = world.shop.factory
    assert isinstance(factory, SqlUnitOfWorkFactory), "the memory store keeps no ciphertext"
    users = tables.users
    async with factory.engine.begin() as conn:
        await conn.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(nwc_connection_string=LOST_KEY.encrypt(wallet))
        )
