"""Storage backends the contract suites run against: memory, SQLite and MariaDB (`mysql`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import attrs
import pytest
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.memory.storage import MemoryUnitOfWorkFactory
from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.uow import SqlUnitOfWorkFactory
from domain.enums import (
    DiskInterface,
    DiskType,
    IntervalType,
    OsDistribution,
    PaymentMethod,
    SubscriptionPaymentType,
    SubscriptionType,
    VmHostKind,
)
from domain.model import (
    GIB,
    Company,
    CostPlan,
    Host,
    HostDisk,
    IpRange,
    LineItem,
    OsImage,
    Region,
    SshKey,
    Subscription,
    SubscriptionPayment,
    User,
    Vm,
    VmTemplate,
)
from ports.storage import UnitOfWork, UnitOfWorkFactory
from tests.dbtest import MYSQL_HEAD, SqliteTemplate

T = TypeVar("T")


#: a fixed test key: SQL backends store `ENC:` AES-256-GCM values as in production
TEST_KEY = bytes(range(32))
#: a key other than the storage's (`TEST_KEY`), as a lost or rotated one: what it sealed
#: reads as `Unreadable`
LOST_KEY = AesGcmSecretBox(bytes(reversed(TEST_KEY)))


@attrs.frozen
class Database:
    kind: str
    url: str | None = None
    #: MariaDB: the module's one engine on `url`, lent to each test by `engine_for`
    engine: AsyncEngine | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Backend:
    """A clean storage for one test; `engine` is None for memory."""

    kind: str
    factory: UnitOfWorkFactory
    engine: AsyncEngine | None = None


def at(day: int, hour: int = 12, month: int = 3) -> datetime:
    """A whole-second aware UTC time in 2026 (SQL columns keep whole seconds)."""
    return datetime(2026, month, day, hour, tzinfo=UTC)


def _mysql_database() -> Iterator[Database]:
    """This process's shared database at head (`MysqlTemplate.shared`: in a fresh copy's
    state at the module's start; skip/fail as `tests.dbtest` says), with the module's engine
    on it. Dropped at the end of the process (`tests/conftest.py`)."""
    _, url = asyncio.run(MYSQL_HEAD.shared())
    engine = create_engine(url)
    try:
        yield Database("mysql", url, engine)
    finally:
        asyncio.run(engine.dispose())


@pytest.fixture(
    scope="module",
    params=["memory", "sqlite", pytest.param("mysql", marks=pytest.mark.mysql)],
)
def database(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _sqlite_template: SqliteTemplate,
) -> Iterator[Database]:
    """One database at head per test module and backend kind (SQL: a copy of this
    process's migrated template, `tests.dbtest`)."""
    kind = str(request.param)
    if kind == "memory":
        yield Database("memory")
    elif kind == "sqlite":
        target = tmp_path_factory.mktemp("storage") / "lnvps.db"
        yield Database("sqlite", asyncio.run(_sqlite_template.copy_to(target)))
    else:
        yield from _mysql_database()


def only(*kinds: str) -> pytest.MarkDecorator:
    """A test module's test run on these backends only (`database` parametrized for it):
    not collected, then skipped, on the others."""
    params = [pytest.param(k, marks=pytest.mark.mysql) if k == "mysql" else k for k in kinds]
    return pytest.mark.parametrize("database", params, indirect=True)


@asynccontextmanager
async def engine_for(database: Database) -> AsyncIterator[AsyncEngine]:
    """The engine one test (or one Hypothesis example) runs on, its pool emptied on exit.

    MariaDB: the module's engine (`Database.engine`), so its dialect is set up and its
    statements compiled once per module, not once per test; its pooled connections are
    closed on exit (and the pool replaced) because a connection belongs to the event loop
    it was opened in, and each test runs in a loop of its own. The test's session state
    (named locks, session variables, open transactions) ends with its connections, as it
    did with an engine per test. SQLite: an engine of its own, disposed on exit. A test
    that needs a second pool beside this one (racing workers) makes its own engine.
    """
    if database.engine is not None:
        engine = database.engine
    else:
        assert database.url is not None, "memory storage has no engine"
        engine = create_engine(database.url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def tables_with_rows(conn: AsyncConnection) -> set[str]:
    """The names of the tables (`tables.metadata`) that hold a row, in one statement.

    A test leaves rows in a handful of the ~40 tables; emptying only those is a dozen
    statements instead of a DELETE per table (each a round trip to MariaDB)."""
    quote = conn.dialect.identifier_preparer.quote
    dual = " FROM DUAL" if conn.dialect.name in ("mysql", "mariadb") else ""
    probe = " UNION ALL ".join(
        f"SELECT '{table.name}'{dual} WHERE EXISTS (SELECT 1 FROM {quote(table.name)})"
        for table in tables.metadata.sorted_tables
    )
    return {str(name) for name in (await conn.execute(text(probe))).scalars()}


async def empty_all_tables(engine: AsyncEngine) -> None:
    """Delete every row of every table, children first (the tables with rows only)."""
    async with engine.begin() as conn:
        filled = await tables_with_rows(conn)
        for table in reversed(tables.metadata.sorted_tables):
            if table.name in filled:
                await conn.execute(delete(table))


@pytest.fixture
async def backend(database: Database) -> AsyncIterator[Backend]:
    """Empty storage of the module's kind; SQL engines seal `ENC:` columns with AES-GCM."""
    if database.url is None:
        yield Backend("memory", MemoryUnitOfWorkFactory())
        return
    async with engine_for(database) as engine:
        await empty_all_tables(engine)
        yield Backend(
            database.kind, SqlUnitOfWorkFactory(engine, AesGcmSecretBox(TEST_KEY)), engine
        )


@pytest.fixture
def uow_factory(backend: Backend) -> UnitOfWorkFactory:
    return backend.factory


@attrs.frozen
class World:
    """A minimal catalogue and one customer with a VM sold through a subscription."""

    company: Company
    region: Region
    host: Host
    disk: HostDisk
    image: OsImage
    plan: CostPlan
    template: VmTemplate
    user: User
    ssh_key: SshKey
    subscription: Subscription
    line_item: LineItem
    vm: Vm
    #: the region's IPv4 range, as every region whose VMs are built has one: a payment that
    #: starts a VM's service (a first payment, a revival) needs an address from it
    ip_range: IpRange


async def stored_world(uow_factory: UnitOfWorkFactory) -> World:
    """`seed_world` in a unit of work of its own, committed."""
    async with uow_factory() as uow:
        world = await seed_world(uow)
        await uow.commit()
    return world


async def seed_world(uow: UnitOfWork, pubkey: bytes = b"\x01" * 32) -> World:
    """Create the World rows (not committed)."""
    company = await uow.companies.add(Company(id=0, created=at(1), name="ACME", email="a@b"))
    region = await uow.regions.add(Region(id=0, name="eu", enabled=True, company_id=company.id))
    host = await uow.hosts.add(
        Host(
            id=0,
            kind=VmHostKind.PROXMOX,
            region_id=region.id,
            name="h1",
            ip="https://h1:8006",
            cpu=32,
            memory=128 * GIB,
            enabled=True,
            api_token="token-secret",
            ssh_key="-----BEGIN KEY-----",
        )
    )
    disk = await uow.host_disks.add(
        HostDisk(
            id=0,
            host_id=host.id,
            name="local",
            size=1000 * GIB,
            kind=DiskType.SSD,
            interface=DiskInterface.PCIE,
            enabled=True,
        )
    )
    ip_range = await uow.ip_ranges.add(
        IpRange(id=0, cidr="10.9.0.0/24", enabled=True, region_id=region.id, gateway="10.9.0.1")
    )
    image = await uow.images.add(
        OsImage(
            id=0,
            distribution=OsDistribution.DEBIAN,
            flavour="server",
            version="12",
            enabled=True,
            release_date=at(1),
            url="https://img",
        )
    )
    plan = await uow.cost_plans.add(
        CostPlan(
            id=0,
            name="monthly",
            created=at(1),
            amount=500,
            currency="EUR",
            interval_amount=1,
            interval_type=IntervalType.MONTH,
        )
    )
    template = await uow.templates.add(
        VmTemplate(
            id=0,
            name="small",
            enabled=True,
            created=at(1),
            expires=None,
            cpu=2,
            memory=2 * GIB,
            disk_size=40 * GIB,
            disk_type=DiskType.SSD,
            disk_interface=DiskInterface.PCIE,
            cost_plan_id=plan.id,
            region_id=region.id,
        )
    )
    user = await uow.users.get_or_create_by_pubkey(pubkey, at(1))
    key = await uow.ssh_keys.add(
        SshKey(id=0, name="k", user_id=user.id, created=at(1), key_data="ssh-ed25519 AAA")
    )
    subscription, (item,) = await uow.subscriptions.add_with_line_items(
        new_subscription(user.id, company.id),
        [
            LineItem(
                id=0,
                subscription_id=0,
                subscription_type=SubscriptionType.VPS,
                name="small",
                amount=500,
            )
        ],
    )
    vm = await uow.vms.add(
        Vm(
            id=0,
            host_id=host.id,
            user_id=user.id,
            image_id=image.id,
            template_id=template.id,
            custom_template_id=None,
            ssh_key_id=key.id,
            disk_id=disk.id,
            subscription_line_item_id=item.id,
        )
    )
    return World(
        company,
        region,
        host,
        disk,
        image,
        plan,
        template,
        user,
        key,
        subscription,
        item,
        vm,
        ip_range,
    )


def new_subscription(user_id: int, company_id: int, **fields: Any) -> Subscription:
    values: dict[str, Any] = {
        "id": 0,
        "user_id": user_id,
        "company_id": company_id,
        "name": "VPS",
        "created": at(1),
        "currency": "EUR",
    }
    values.update(fields)
    return Subscription(**values)


def new_payment(subscription: Subscription, **fields: Any) -> SubscriptionPayment:
    """A pending Lightning renewal of `subscription`, unique id, expiring on 10 March."""
    values: dict[str, Any] = {
        "id": uuid.uuid4().bytes * 2,
        "subscription_id": subscription.id,
        "user_id": subscription.user_id,
        "created": at(2),
        "expires": at(10),
        "amount": 500,
        "currency": "EUR",
        "payment_method": PaymentMethod.LIGHTNING,
        "payment_type": SubscriptionPaymentType.RENEWAL,
        "external_data": "lnbc1...",
        "rate": Decimal("1"),
    }
    values.update(fields)
    return SubscriptionPayment(**values)
