"""The legacy billing backfill on SQLite and MariaDB, with one regression test per pitfall (§10)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.mysql import tables as t
from adapters.mysql.engine import create_engine, dialect_is_mysql, url_is_mysql
from adapters.mysql.legacy_backfill import (
    LOCK_NAME,
    BackfillIncomplete,
    BackfillLockTimeout,
    LegacyShapeError,
    migrate_legacy_billing,
    prepare_database,
)
from adapters.mysql.legacy_finalize import (
    FinalizationRefused,
    finalization_blockers,
    finalize_legacy_billing,
)
from adapters.mysql.legacy_shape import read_shape
from adapters.mysql.legacy_vms import read_vm_batch
from adapters.mysql.migrations import R1_LEGACY
from adapters.mysql.named_locks import of_this_database
from adapters.mysql.schema_upgrade import upgrade_database
from adapters.mysql.types import UInt
from adapters.mysql.uow import SqlUnitOfWorkFactory
from domain.enums import LegacyPaymentType, SubscriptionPaymentType, SubscriptionType
from domain.legacy import BackfillReport, LegacyPaymentRow, map_payment
from domain.lifecycle import never_paid_cleanup_due
from domain.subscription import payment_type_for
from lnvps.cli import main as lnvps_main
from tests.contract.legacy_fixtures import (
    DAY,
    INVALID_PARAMS_ID,
    NOW,
    LegacyFixture,
    build_legacy_rows,
    pid,
    table_checksums,
    table_counts,
)
from tests.contract.lock_waits import until
from tests.dbtest import (
    copy_database,
    create_mysql_database,
    drop_mysql_database,
    sqlite_url_for,
)

ENGINES = ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)]


# --- helpers ---------------------------------------------------------------------------------
async def build_legacy_db(url: str, *, upgrade: bool = True) -> LegacyFixture:
    """As an operator would: legacy shape (r1), legacy rows, then the schema upgrade to head."""
    await upgrade_database(url, R1_LEGACY)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            fixture = await build_legacy_rows(conn)
    finally:
        await engine.dispose()
    if upgrade:
        await upgrade_database(url)
    return fixture


class LegacyBuilds:
    """`build_legacy_db`'s two results (at the legacy shape, and upgraded to head), built once
    per engine in this test process and copied into each test's database (`legacy_db`).

    A build migrates to r1, inserts the rows and upgrades (~0.7 s on MariaDB, several times
    that on a loaded machine); a copy of its tables and rows costs ~0.15 s. Two builds differ
    only in `CURRENT_TIMESTAMP` defaults and in the order SQLite's batch migrations write
    constraints in, so a copy stands for a build; `scenario` still builds its own.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._built: dict[tuple[bool, bool], tuple[str, LegacyFixture]] = {}
        self._mysql: list[str] = []

    async def copy_to(self, url: str, *, upgrade: bool) -> LegacyFixture:
        mysql = url_is_mysql(url)
        if (mysql, upgrade) not in self._built:
            if mysql:
                name, source = await create_mysql_database()
                self._mysql.append(name)
            else:
                source = sqlite_url_for(self.folder / f"legacy-{'head' if upgrade else 'r1'}.db")
            self._built[mysql, upgrade] = (source, await build_legacy_db(source, upgrade=upgrade))
        source, fixture = self._built[mysql, upgrade]
        await copy_database(source, url)
        return fixture

    async def drop(self) -> None:
        for name in self._mysql:
            await drop_mysql_database(name)


_builds: list[LegacyBuilds] = []  # this module's, while it runs (`_legacy_builds`)


@pytest.fixture(scope="module", autouse=True)
def _legacy_builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    _builds.append(LegacyBuilds(tmp_path_factory.mktemp("legacy-builds")))
    try:
        yield
    finally:
        asyncio.run(_builds.pop().drop())


async def legacy_db(url: str, *, upgrade: bool = True) -> LegacyFixture:
    """`build_legacy_db(url, upgrade=…)` for the empty database `url`, as a copy of this
    module's build (`LegacyBuilds`)."""
    return await _builds[-1].copy_to(url, upgrade=upgrade)


async def fetch(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


async def execute(url: str, *statements: str, **params: Any) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for sql in statements:
                await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


def _schema(sync: Connection) -> dict[str, list[str]]:
    insp = inspect(sync)
    return {
        name: sorted(str(c["name"]) for c in insp.get_columns(name))
        for name in insp.get_table_names()
    }


async def schema_of(url: str) -> dict[str, list[str]]:
    """Tables → sorted column names."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_schema)
    finally:
        await engine.dispose()


async def snapshot(url: str) -> tuple[dict[str, int], dict[str, str], dict[str, list[str]]]:
    """Row counts, content checksums and the schema (tables → columns) of the database."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            counts = await table_counts(conn)
            sums = await table_checksums(conn)
            shape = await conn.run_sync(_schema)
    finally:
        await engine.dispose()
    return counts, sums, shape


async def migrate(url: str | AsyncEngine, **kwargs: Any) -> BackfillReport:
    kwargs.setdefault("dry_run", False)
    return await migrate_legacy_billing(url, now=NOW, **kwargs)


async def add_trigger(url: str, table: str, event: str, condition: str, name: str) -> None:
    """A trigger that fails one statement: the way tests inject a failure for one VM."""
    if url.startswith("sqlite"):
        sql = (
            f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW WHEN {condition} "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
    else:
        sql = (
            f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW BEGIN IF {condition} "
            "THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure'; END IF; END"
        )
    await execute(url, sql)


# --- one full run per engine, shared by the read-only tests -----------------------------------
@attrs.frozen(kw_only=True)
class Scenario:
    url: str
    fixture: LegacyFixture
    legacy_before: tuple[Any, Any, Any]
    legacy_after_dry: tuple[Any, Any, Any]
    head_before: tuple[Any, Any, Any]
    head_after_dry: tuple[Any, Any, Any]
    dry_legacy: BackfillReport
    dry_head: BackfillReport
    legacy_columns_at_backfill: bool
    first: BackfillReport
    after_first: tuple[Any, Any, Any]
    second: BackfillReport
    after_second: tuple[Any, Any, Any]


async def _scenario(url: str) -> Scenario:
    fixture = await build_legacy_db(url, upgrade=False)
    legacy_before = await snapshot(url)
    dry_legacy = await migrate(url, dry_run=True)
    legacy_after_dry = await snapshot(url)
    await upgrade_database(url)
    head_before = await snapshot(url)
    dry_head = await migrate(url, dry_run=True)
    head_after_dry = await snapshot(url)
    engine = create_engine(url)
    async with engine.connect() as conn:
        legacy_columns = (await read_shape(conn)).has_legacy_vm_columns
    await engine.dispose()
    first = await migrate(url)
    after_first = await snapshot(url)
    second = await migrate(url)
    after_second = await snapshot(url)
    return Scenario(
        url=url,
        fixture=fixture,
        legacy_before=legacy_before,
        legacy_after_dry=legacy_after_dry,
        head_before=head_before,
        head_after_dry=head_after_dry,
        dry_legacy=dry_legacy,
        dry_head=dry_head,
        legacy_columns_at_backfill=legacy_columns,
        first=first,
        after_first=after_first,
        second=second,
        after_second=after_second,
    )


@pytest.fixture(scope="module", params=ENGINES)
def scenario(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    if request.param == "sqlite":
        url = sqlite_url_for(tmp_path_factory.mktemp("legacy") / "legacy.db")
        yield asyncio.run(_scenario(url))
        return
    name, url = asyncio.run(create_mysql_database())
    try:
        yield asyncio.run(_scenario(url))
    finally:
        asyncio.run(drop_mysql_database(name))


@pytest.fixture(params=ENGINES)
async def legacy_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database per test (for tests that break or race the backfill)."""
    if request.param == "sqlite":
        yield sqlite_url_for(tmp_path / "legacy.db")
        return
    name, url = await create_mysql_database()
    try:
        yield url
    finally:
        await drop_mysql_database(name)


SUBSCRIPTIONS = """
SELECT v.id AS vm_id, v.user_id AS vm_user, v.deleted, v.auto_renewal_enabled AS vm_auto,
       v.expires AS vm_expires, v.created AS vm_created, s.id AS sub_id, s.user_id, s.company_id,
       s.name, s.description, s.created, s.expires, s.is_active, s.is_setup, s.currency,
       s.interval_amount, s.interval_type, s.setup_fee, s.auto_renewal_enabled, s.external_id,
       li.subscription_type, li.name AS item_name, li.description AS item_description,
       li.amount, li.setup_amount, li.configuration
FROM vm v JOIN subscription_line_item li ON li.id = v.subscription_line_item_id
JOIN subscription s ON s.id = li.subscription_id ORDER BY v.id
"""


async def subscriptions(url: str) -> dict[int, Any]:
    return {row.vm_id: row for row in await fetch(url, SUBSCRIPTIONS)}


def as_dt(value: Any) -> datetime:
    """A raw TIMESTAMP value (datetime from MariaDB, text from SQLite) as naive UTC."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def as_bool(value: Any) -> bool:
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big") != 0
    return bool(int(value))


# --- main properties -------------------------------------------------------------------------
async def test_every_vm_is_linked_to_its_own_vps_subscription(scenario: Scenario) -> None:
    url = scenario.url
    unlinked = await fetch(
        url,
        "SELECT id FROM vm WHERE subscription_line_item_id IS NULL "
        "OR subscription_line_item_id = 0",
    )
    assert unlinked == []
    subs = await subscriptions(url)
    assert set(subs) == set(scenario.fixture.vms)
    assert len({row.sub_id for row in subs.values()}) == len(subs)  # 1:1 (acceptance 2)
    assert scenario.first.vms_linked == len(scenario.fixture.vms)
    per_sub = await fetch(
        url,
        "SELECT subscription_id, COUNT(*) FROM subscription_line_item GROUP BY subscription_id "
        "HAVING COUNT(*) <> 1",
    )
    assert per_sub == []


async def test_subscription_fields_follow_the_legacy_vm(scenario: Scenario) -> None:
    subs = await subscriptions(scenario.url)
    for vm_id, case in scenario.fixture.vms.items():
        row = subs[vm_id]
        assert row.name == f"VM {vm_id} Subscription"
        assert row.description == case.description == row.item_name
        assert row.user_id == row.vm_user
        assert row.currency == case.currency, case.label
        assert (row.interval_amount, row.interval_type) == case.interval, case.label
        assert row.amount == case.amount, case.label
        assert row.setup_fee == 0 and row.setup_amount == 0
        assert row.external_id is None and row.item_description is None
        assert row.configuration is None
        assert row.created == row.vm_created  # deviation from §4.4, see domain.legacy.plan_vm


async def test_run_report_warns_of_the_invalid_params_and_r7(scenario: Scenario) -> None:
    """Unreadable upgrade_params do not hold a money record back: the payment is copied with
    the text kept in its metadata and reported as a warning, so start-up is not blocked for
    it (R3, D18)."""
    report = scenario.first
    assert report.ok and report.errors == []
    assert report.payments_copied == len(scenario.fixture.payment_ids)
    assert report.payments_failed == 0 and report.vms_failed == 0
    assert report.warning_count == 2
    r7, params = sorted(report.warnings, key=lambda w: w.phase)
    assert "R7" in r7.message
    assert params.payment_id == INVALID_PARAMS_ID.hex()
    assert "not valid JSON" in params.message and "kept verbatim" in params.message


async def test_payments_are_copied_byte_for_byte(scenario: Scenario) -> None:
    """B5: raw column equality, compared by the server (HEX for text and ids)."""
    columns = [
        "created",
        "expires",
        "amount",
        "currency",
        "payment_method",
        "external_id",
        "is_paid",
        "rate",
        "tax",
        "processing_fee",
        "paid_at",
    ]
    differing = " OR ".join(
        f"NOT ((sp.{c} = vp.{c}) OR (sp.{c} IS NULL AND vp.{c} IS NULL))" for c in columns
    )
    sql = (
        "SELECT HEX(vp.id) FROM vm_payment vp JOIN subscription_payment sp ON sp.id = vp.id "
        f"WHERE HEX(sp.external_data) <> HEX(vp.external_data) OR {differing}"
    )
    assert await fetch(scenario.url, sql) == []
    copied = await fetch(
        scenario.url,
        "SELECT vp.id, vp.external_data, sp.external_data FROM vm_payment vp "
        "JOIN subscription_payment sp ON sp.id = vp.id",
    )
    assert len(copied) == len(scenario.fixture.payment_ids)
    assert all(bytes(a) in scenario.fixture.payment_ids for a, _, _ in copied)
    assert all(old == new for _, old, new in copied)
    kinds = {("ENC" if old.startswith("ENC:") else "plain") for _, old, _ in copied}
    assert kinds == {"ENC", "plain"}


async def test_payments_attach_to_their_vms_subscription(scenario: Scenario) -> None:
    rows = await fetch(
        scenario.url,
        "SELECT vp.id FROM vm_payment vp JOIN vm v ON v.id = vp.vm_id "
        "JOIN subscription_line_item li ON li.id = v.subscription_line_item_id "
        "LEFT JOIN subscription_payment sp ON sp.id = vp.id "
        "WHERE sp.id IS NULL OR sp.subscription_id <> li.subscription_id",
    )
    assert rows == []


async def test_payment_mapping_matches_the_domain_rules(scenario: Scenario) -> None:
    """The SQL CASE twins of the domain rules agree with them on every fixture row."""
    rows = await fetch(
        scenario.url,
        "SELECT vp.id, vp.vm_id, vp.payment_type AS old_type, vp.payment_method, "
        "vp.time_value AS old_tv, vp.is_paid, vp.upgrade_params, sp.payment_type, "
        "sp.time_value, sp.metadata FROM vm_payment vp "
        "JOIN subscription_payment sp ON sp.id = vp.id",
    )
    for row in rows:
        expected = map_payment(
            LegacyPaymentRow(
                id=bytes(row.id),
                vm_id=row.vm_id,
                payment_type=row.old_type,
                payment_method=row.payment_method,
                time_value=row.old_tv,
                is_paid=as_bool(row.is_paid),
                upgrade_params=row.upgrade_params,
            )
        )
        assert row.payment_type == expected.payment_type
        assert row.time_value == expected.time_value
        assert row.metadata == expected.metadata


async def test_second_run_changes_nothing(scenario: Scenario) -> None:
    assert scenario.after_second[:2] == scenario.after_first[:2]
    second = scenario.second
    assert (second.vms_linked, second.payments_copied) == (0, 0)
    assert second.vms_skipped == len(scenario.fixture.vms)
    assert second.payments_skipped == len(scenario.fixture.payment_ids)
    assert second.ok and second.warning_count == 0  # the copied row is not reported again


async def test_dry_run_on_the_legacy_shape_writes_nothing(scenario: Scenario) -> None:
    """D18: not even schema changes (the old tool's dry run ran the migrations first, §8)."""
    assert scenario.legacy_after_dry == scenario.legacy_before
    assert "subscription_line_item_id" not in scenario.legacy_after_dry[2]["vm"]


async def test_dry_run_on_the_head_shape_writes_nothing(scenario: Scenario) -> None:
    assert scenario.head_after_dry == scenario.head_before


async def test_dry_run_predicts_the_real_run(scenario: Scenario) -> None:
    for dry in (scenario.dry_legacy, scenario.dry_head):
        assert dry.dry_run
        assert dry.vms_linked == scenario.first.vms_linked
        assert dry.payments_copied == scenario.first.payments_copied
        assert [str(e) for e in dry.errors] == [str(e) for e in scenario.first.errors]


async def test_the_vm_adapter_reads_every_vm_afterwards(scenario: Scenario) -> None:
    engine = create_engine(scenario.url)
    try:
        async with SqlUnitOfWorkFactory(engine, AesGcmSecretBox(os.urandom(32)))() as uow:
            vms = await uow.vms.list_all()
    finally:
        await engine.dispose()
    assert {vm.id for vm in vms} == set(scenario.fixture.vms)
    assert all(isinstance(vm.subscription_line_item_id, int) for vm in vms)


async def test_r6_pre_existing_non_vm_subscription_is_kept_but_set_up(scenario: Scenario) -> None:
    """Acceptance 5 and R6: the IP-range subscription keeps its rows and payment, but, paid
    before the upgrade, it is marked set up. The reference left `is_setup` at the column's
    default 0, so its next invoice was a Purchase that charged the setup fee again (review
    r2; a deviation, see docs/decisions.md)."""
    sub_id = scenario.fixture.non_vm_subscription_id
    rows = await fetch(
        scenario.url,
        "SELECT s.is_setup, s.interval_amount, s.interval_type, li.subscription_type, "
        "(SELECT COUNT(*) FROM subscription_payment sp WHERE sp.subscription_id = s.id) AS n "
        "FROM subscription s JOIN subscription_line_item li ON li.subscription_id = s.id "
        "WHERE s.id = :s",
        s=sub_id,
    )
    assert len(rows) == 1
    assert as_bool(rows[0].is_setup)
    assert (rows[0].interval_amount, rows[0].interval_type) == (1, 1)
    assert rows[0].subscription_type == int(SubscriptionType.IP_RANGE)
    assert rows[0].n == 1


async def test_r6_paid_legacy_non_vm_subscription_renews_without_its_setup_fee(
    scenario: Scenario,
) -> None:
    """Review r2: its next invoice is a Renewal (no setup fee), read as the app reads it."""
    engine = create_engine(scenario.url)
    try:
        async with SqlUnitOfWorkFactory(engine, AesGcmSecretBox(os.urandom(32)))() as uow:
            sub = await uow.subscriptions.get(scenario.fixture.non_vm_subscription_id)
    finally:
        await engine.dispose()
    assert sub is not None and sub.is_setup
    assert payment_type_for(sub) is SubscriptionPaymentType.RENEWAL


LEGACY_SUBSCRIPTION = (
    "INSERT INTO subscription (id, user_id, company_id, name, currency, is_active, expires) "
    "VALUES (:id, 1, 1, :name, 'EUR', 1, :expires)"
)
LEGACY_ITEM = (
    "INSERT INTO subscription_line_item (subscription_id, subscription_type, name, amount, "
    "setup_amount) VALUES (:id, :kind, :name, 1000, 5000)"
)
LEGACY_PAYMENT = (
    "INSERT INTO subscription_payment (id, subscription_id, user_id, created, expires, amount, "
    "currency, payment_method, payment_type, external_data, is_paid, rate, tax, "
    "processing_fee) VALUES (:pid, :id, 1, :created, :expires, 6000, 'EUR', 1, :type, 'x', "
    ":paid, 1.0, 0, 0)"
)


async def test_r6_only_non_vm_subscriptions_paid_before_the_upgrade_are_set_up(
    legacy_url: str,
) -> None:
    """Paid Purchase or Renewal rows from before the upgrade set up their subscription (ASN,
    DNS as well as IP range); an unpaid one does not, nor a payment made after the upgrade
    that left its subscription not set up (paid but booked as account credit)."""
    await build_legacy_db(legacy_url, upgrade=False)
    created, expires = (NOW - 20 * DAY).replace(tzinfo=None), (NOW + 10 * DAY).replace(tzinfo=None)
    legacy = {  # id: (type, payment_type, paid)
        901: (SubscriptionType.ASN_SPONSORING, 1, True),
        902: (SubscriptionType.DNS_HOSTING, 0, True),
        903: (SubscriptionType.IP_RANGE, 0, False),
    }
    for sub_id, (kind, payment_type, paid) in legacy.items():
        params = {"id": sub_id, "name": f"legacy {sub_id}", "expires": expires}
        await execute(legacy_url, LEGACY_SUBSCRIPTION, **params)
        await execute(legacy_url, LEGACY_ITEM, id=sub_id, kind=int(kind), name="item")
        await execute(
            legacy_url, LEGACY_PAYMENT, id=sub_id, pid=pid(f"legacy-{sub_id}"), type=payment_type,
            paid=paid, created=created, expires=expires,
        )  # fmt: skip
    await upgrade_database(legacy_url)
    await execute(legacy_url, LEGACY_SUBSCRIPTION, id=904, name="after the upgrade", expires=None)
    await execute(legacy_url, LEGACY_ITEM, id=904, kind=int(SubscriptionType.IP_RANGE), name="/29")
    await execute(
        legacy_url, LEGACY_PAYMENT, id=904, pid=pid("credited"), type=0, paid=True,
        created=created, expires=expires,
    )  # fmt: skip
    await execute(
        legacy_url,
        "UPDATE subscription_payment SET time_value = 0, metadata = :meta WHERE id = :pid",
        meta='{"credit": {"amount": 6000}}',
        pid=pid("credited"),
    )
    report = await migrate(legacy_url)
    assert report.ok
    setup = await fetch(
        legacy_url, "SELECT id, is_setup FROM subscription WHERE id BETWEEN 901 AND 904"
    )
    assert {row.id: as_bool(row.is_setup) for row in setup} == {
        901: True,
        902: True,
        903: False,
        904: False,
    }
    before = await snapshot(legacy_url)
    assert (await migrate(legacy_url)).ok
    assert (await snapshot(legacy_url))[:2] == before[:2]


async def test_r6_set_up_in_the_transaction_copying_its_range_and_resumed(
    legacy_url: str,
) -> None:
    """The range holding the IP-range payment's id fails to copy: nothing of it is written,
    the subscription stays not set up, and the next run does both."""
    fixture = await build_legacy_db(legacy_url)
    ip_payment = pid("ip-purchase")
    after = min(i for i in fixture.payment_ids if i > ip_payment)  # its range's upper bound
    condition = "NEW.id = X'" + after.hex() + "'"
    await add_trigger(legacy_url, "subscription_payment", "INSERT", condition, "fail_copy")
    setup = "SELECT is_setup FROM subscription WHERE id = :s"
    sub_id = fixture.non_vm_subscription_id
    report = await migrate(legacy_url, payment_batch=1)
    assert not report.ok and report.payments_failed == 1
    assert not as_bool((await fetch(legacy_url, setup, s=sub_id))[0][0])
    await execute(legacy_url, "DROP TRIGGER fail_copy")
    report = await migrate(legacy_url, payment_batch=1)
    assert report.ok and report.payments_copied == 1
    assert as_bool((await fetch(legacy_url, setup, s=sub_id))[0][0])


async def test_never_paid_orders_are_adopted_without_expiry(legacy_url: str) -> None:
    """Review r2: LNVPS marks an order never paid with `vm.expires == vm.created`. Copied,
    that expiry made it a VM given time (`Subscription.in_service`): D17 never cleaned it up
    and its user was told "Expired" and "Cancelled". Adopted with `expires = NULL` it is a
    never-paid order; a VM with a paid payment keeps its expiry whatever its dates."""
    fixture = await build_legacy_db(legacy_url)
    by_label = {case.label: case.id for case in fixture.vms.values()}
    never_paid = {
        by_label["both-templates"],  # no payment
        by_label["plan-currency-mismatch"],  # an unpaid, expired invoice
        by_label["no-payments-deleted-custom"],  # deleted
    }
    paid = by_label["standard-future"]
    marked = ", ".join(str(i) for i in sorted({*never_paid, paid}))
    await execute(legacy_url, f"UPDATE vm SET expires = created WHERE id IN ({marked})")
    dry = await migrate(legacy_url, dry_run=True)
    report = await migrate(legacy_url)
    assert report.ok and report.warning_count == 2  # R7, R3 as ever
    assert (report.vms_linked, report.vms_never_paid) == (len(fixture.vms), len(never_paid))
    assert report.payments_copied == len(fixture.payment_ids)
    assert (dry.vms_linked, dry.vms_never_paid) == (report.vms_linked, report.vms_never_paid)
    assert "3 of them never-paid orders" in report.summary()
    subs = await subscriptions(legacy_url)
    for vm_id, case in fixture.vms.items():
        row = subs[vm_id]
        if vm_id in never_paid:
            assert row.expires is None and not as_bool(row.is_setup), case.label
        else:
            assert as_dt(row.expires) == as_dt(row.vm_expires), case.label
            assert as_bool(row.is_setup) is case.paid, case.label
        assert as_bool(row.is_active) is (not case.deleted)
    assert as_dt(subs[paid].expires) == as_dt(subs[paid].vm_created)
    engine = create_engine(legacy_url)
    try:
        async with SqlUnitOfWorkFactory(engine, AesGcmSecretBox(os.urandom(32)))() as uow:
            live = {vm.id for vm in await uow.vms.list_never_paid(ordered_before=NOW)}
            order = await uow.subscriptions.get(subs[by_label["both-templates"]].sub_id)
    finally:
        await engine.dispose()
    assert live == never_paid - {by_label["no-payments-deleted-custom"]}
    assert order is not None and never_paid_cleanup_due(order, False, NOW)  # D17
    before = await snapshot(legacy_url)
    again = await migrate(legacy_url)
    assert (again.vms_linked, again.vms_never_paid, again.payments_copied) == (0, 0, 0)
    assert (await snapshot(legacy_url))[:2] == before[:2]


# --- §10 pitfalls: one regression test each ---------------------------------------------------
async def test_b1_ordering_legacy_columns_exist_when_the_backfill_runs(scenario: Scenario) -> None:
    assert scenario.legacy_columns_at_backfill
    assert {"expires", "auto_renewal_enabled", "created"} <= set(scenario.after_first[2]["vm"])
    assert "vm_payment" in scenario.after_first[2]


async def test_b1_ordering_dropped_legacy_columns_are_refused(legacy_url: str) -> None:
    await legacy_db(legacy_url)
    await execute(legacy_url, "ALTER TABLE vm DROP COLUMN auto_renewal_enabled")
    before = await fetch(legacy_url, "SELECT COUNT(*) FROM subscription")
    with pytest.raises(LegacyShapeError, match="B1"):
        await migrate(legacy_url)
    assert await fetch(legacy_url, "SELECT COUNT(*) FROM subscription") == before


async def test_b1_ordering_finalization_is_refused_until_everything_is_migrated(
    legacy_url: str,
) -> None:
    await legacy_db(legacy_url)
    blockers = await finalization_blockers(legacy_url)
    assert blockers.unlinked_vms == 9 and blockers.uncopied_payments == 14
    with pytest.raises(FinalizationRefused):
        await finalize_legacy_billing(legacy_url)
    await execute(
        legacy_url, "UPDATE vm_payment SET payment_method = 9 WHERE id = :id", id=INVALID_PARAMS_ID
    )
    await migrate(legacy_url)
    with pytest.raises(FinalizationRefused, match="1 vm_payment"):
        await finalize_legacy_billing(legacy_url)  # the unknown-method payment is not copied
    await execute(
        legacy_url, "UPDATE vm_payment SET payment_method = 0 WHERE id = :id", id=INVALID_PARAMS_ID
    )
    assert (await migrate(legacy_url)).ok
    await finalize_legacy_billing(legacy_url)
    schema = await schema_of(legacy_url)
    assert "vm_payment" not in schema and "expires" not in schema["vm"]
    report = await migrate(legacy_url)
    assert report.ok and report.notes and "finalized" in report.notes[0]


def _finalize_steps(done: int) -> Any:
    """The first `done` DDL steps of finalization (§9), as a crash half-way leaves them."""

    def run(sync: Connection) -> None:
        ops = Operations(MigrationContext.configure(sync))
        if done >= 1:
            ops.drop_table("vm_payment")
        for step in range(2, done + 1):
            with ops.batch_alter_table("vm") as batch:
                if step == 2:
                    batch.alter_column(
                        "subscription_line_item_id", existing_type=UInt, nullable=False
                    )
                else:
                    batch.drop_column(("expires", "auto_renewal_enabled")[step - 3])

    return run


@pytest.mark.parametrize("done", [1, 2, 3, 4])
async def test_a_finalization_interrupted_half_way_neither_blocks_start_up_nor_itself(
    legacy_url: str, done: int
) -> None:
    """MariaDB DDL is not transactional: a crash after any step of finalization must leave a
    database that starts (the backfill skips itself) and that a second finalize finishes."""
    await legacy_db(legacy_url)
    assert (await migrate(legacy_url)).ok
    engine = create_engine(legacy_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_finalize_steps(done))
    finally:
        await engine.dispose()
    counted = (
        "SELECT (SELECT COUNT(*) FROM subscription), (SELECT COUNT(*) FROM subscription_payment)"
    )
    before = await fetch(legacy_url, counted)
    report = await prepare_database(legacy_url)
    assert report.ok and "interrupted" in report.notes[0]
    assert await fetch(legacy_url, counted) == before
    await finalize_legacy_billing(legacy_url)
    schema = await schema_of(legacy_url)
    assert "vm_payment" not in schema
    assert not {"expires", "auto_renewal_enabled", "created"} & set(schema["vm"])
    report = await prepare_database(legacy_url)
    assert report.ok and "finalized shape" in report.notes[0]
    await finalize_legacy_billing(legacy_url)  # a third run has nothing left to do


async def test_b2_lost_expiry_expires_and_auto_renew_are_preserved(scenario: Scenario) -> None:
    subs = await subscriptions(scenario.url)
    compared = await fetch(
        scenario.url,
        "SELECT v.id FROM vm v JOIN subscription_line_item li ON li.id = "
        "v.subscription_line_item_id JOIN subscription s ON s.id = li.subscription_id "
        "WHERE NOT (s.expires = v.expires) OR s.expires IS NULL "
        "OR s.auto_renewal_enabled <> v.auto_renewal_enabled",
    )
    assert compared == []
    for vm_id, case in scenario.fixture.vms.items():
        row = subs[vm_id]
        assert as_dt(row.expires) == as_dt(row.vm_expires) == case.expires.replace(tzinfo=None)
        assert as_bool(row.auto_renewal_enabled) is case.auto_renew
    labels = {c.label for c in scenario.fixture.vms.values()}
    assert {"standard-future", "standard-expired-yearly", "deleted"} <= labels


async def test_b3_deleted_vms_are_linked(scenario: Scenario) -> None:
    deleted = [c.id for c in scenario.fixture.vms.values() if c.deleted]
    subs = await subscriptions(scenario.url)
    assert len(deleted) == 2 and all(vm_id in subs for vm_id in deleted)


async def test_b4_deleted_vms_are_not_active(scenario: Scenario) -> None:
    subs = await subscriptions(scenario.url)
    for vm_id, case in scenario.fixture.vms.items():
        assert as_bool(subs[vm_id].is_active) is (not case.deleted)


async def test_b5_external_data_needs_no_key_and_is_never_re_encrypted(scenario: Scenario) -> None:
    """The backfill takes no key at all; ENC: rows stay ciphertext, plaintext stays plaintext."""
    rows = await fetch(
        scenario.url,
        "SELECT vp.external_data AS old, sp.external_data AS new FROM vm_payment vp "
        "JOIN subscription_payment sp ON sp.id = vp.id",
    )
    assert any(r.old.startswith("ENC:") for r in rows)
    assert any("café ✓" in r.old for r in rows)
    assert all(r.old == r.new for r in rows)


async def test_b6_null_link_rows_are_read_through_a_projection(legacy_url: str) -> None:
    fixture = await legacy_db(legacy_url)
    engine = create_engine(legacy_url)
    try:
        async with engine.connect() as conn:
            shape = await read_shape(conn)
            vms = await read_vm_batch(conn, shape, 0, 100)
    finally:
        await engine.dispose()
    assert [vm.id for vm in vms] == sorted(fixture.vms)
    custom = [vm for vm in vms if vm.template_id is None]
    assert custom and all(vm.template_name is None for vm in custom)


async def test_b7_vm_line_items_are_type_3_and_type_4_links_are_refused(legacy_url: str) -> None:
    fixture = await legacy_db(legacy_url)
    first_vm = min(fixture.vms)
    await execute(
        legacy_url,
        "INSERT INTO subscription (id, user_id, company_id, name, currency) "
        "VALUES (900, 1, 1, 'dev branch', 'EUR')",
        "INSERT INTO subscription_line_item (id, subscription_id, subscription_type, name, amount)"
        " VALUES (900, 900, 4, 'VmUpgrade', 0)",
        f"UPDATE vm SET subscription_line_item_id = 900 WHERE id = {first_vm}",
    )
    report = await migrate(legacy_url)
    assert report.vms_skipped == 1
    b7 = [e for e in report.errors if "B7" in e.message]
    assert b7 and {e.vm_id for e in b7} == {first_vm}
    copied = await fetch(
        legacy_url, "SELECT COUNT(*) FROM subscription_payment WHERE subscription_id = 900"
    )
    assert copied[0][0] == 0
    types = await fetch(
        legacy_url,
        "SELECT DISTINCT li.subscription_type FROM vm v JOIN subscription_line_item li "
        f"ON li.id = v.subscription_line_item_id WHERE v.id <> {first_vm}",
    )
    assert [r[0] for r in types] == [int(SubscriptionType.VPS)]


# --- further risks -------------------------------------------------------------------------
async def test_r1_non_atomic_link_failure_leaves_no_orphan_subscription(legacy_url: str) -> None:
    """A failure after the subscription insert (at the VM update) rolls back that VM's rows."""
    fixture = await legacy_db(legacy_url)
    victim = sorted(fixture.vms)[2]
    await add_trigger(legacy_url, "vm", "UPDATE", f"NEW.id = {victim}", "fail_link")
    report = await migrate(legacy_url)
    assert report.vms_failed == 1 and report.vms_linked == len(fixture.vms) - 1
    assert any(e.vm_id == victim and e.phase == "phase1" for e in report.errors)
    orphans = await fetch(
        legacy_url,
        "SELECT s.id FROM subscription s WHERE s.name = :n",
        n=f"VM {victim} Subscription",
    )
    assert orphans == []
    await execute(legacy_url, "DROP TRIGGER fail_link")
    again = await migrate(legacy_url)
    assert again.vms_linked == 1
    subs = await fetch(
        legacy_url,
        "SELECT COUNT(*) FROM subscription WHERE name = :n",
        n=f"VM {victim} Subscription",
    )
    assert subs[0][0] == 1


async def test_failure_injected_for_one_vm_leaves_its_rows_absent(legacy_url: str) -> None:
    """D18 one transaction per VM: line item insert fails → no subscription for that VM."""
    fixture = await legacy_db(legacy_url)
    victim = sorted(fixture.vms)[0]
    await add_trigger(
        legacy_url,
        "subscription_line_item",
        "INSERT",
        f"NEW.name LIKE '%(VM {victim})'",
        "fail_item",
    )
    report = await migrate(legacy_url)
    assert not report.ok
    assert [e.vm_id for e in report.errors if e.phase == "phase1"] == [victim]
    assert report.vms_linked == len(fixture.vms) - 1
    rows = await fetch(
        legacy_url,
        "SELECT COUNT(*) FROM subscription WHERE name = :n",
        n=f"VM {victim} Subscription",
    )
    assert rows[0][0] == 0
    link = await fetch(legacy_url, f"SELECT subscription_line_item_id FROM vm WHERE id = {victim}")
    assert link[0][0] is None
    # Its payments are reported per VM, the others are copied.
    assert any(e.vm_id == victim and e.phase == "phase2" for e in report.errors)
    others = await fetch(
        legacy_url,
        f"SELECT COUNT(*) FROM vm_payment vp JOIN subscription_payment sp ON sp.id = vp.id "
        f"WHERE vp.vm_id <> {victim}",
    )
    assert others[0][0] == report.payments_copied > 0


async def test_r2_concurrent_runs_link_each_vm_once(legacy_url: str) -> None:
    fixture = await legacy_db(legacy_url)
    reports = await asyncio.gather(migrate(legacy_url, vm_batch=3), migrate(legacy_url, vm_batch=3))
    assert sum(r.vms_linked for r in reports) == len(fixture.vms)
    count = await fetch(legacy_url, "SELECT COUNT(*) FROM subscription WHERE name LIKE 'VM %'")
    assert count[0][0] == len(fixture.vms)
    copies = await fetch(legacy_url, "SELECT COUNT(*) FROM subscription_payment")
    assert copies[0][0] == len(fixture.payment_ids) + 1  # 14 copied + the non-VM payment


@pytest.mark.mysql
async def test_r2_get_lock_makes_a_second_process_wait_or_fail_clearly(mysql_url: str) -> None:
    fixture = await legacy_db(mysql_url)
    holder = create_engine(mysql_url)
    try:
        async with holder.connect() as conn:
            await conn.execute(
                text(f"SELECT GET_LOCK({of_this_database('n')}, 0)"), {"n": LOCK_NAME}
            )
            with pytest.raises(BackfillLockTimeout, match="another process"):
                await migrate(mysql_url, lock_timeout=1)
            assert (await fetch(mysql_url, "SELECT COUNT(*) FROM subscription"))[0][0] == 1
            waiting = asyncio.create_task(migrate(mysql_url, lock_timeout=30))
            await until(
                "the second backfill waits for the lock",
                lambda waits: waits > 0 or waiting.done(),
                holder,
            )
            assert not waiting.done()
            await conn.execute(
                text(f"SELECT RELEASE_LOCK({of_this_database('n')})"), {"n": LOCK_NAME}
            )
            report = await waiting
    finally:
        await holder.dispose()
    assert report.vms_linked == len(fixture.vms)


async def test_r3_upgrade_params_null_valid_invalid_whitespace(scenario: Scenario) -> None:
    rows = {
        bytes(r.id): r
        for r in await fetch(
            scenario.url,
            "SELECT vp.id, vp.upgrade_params, sp.metadata FROM vm_payment vp "
            "LEFT JOIN subscription_payment sp ON sp.id = vp.id WHERE vp.payment_type = 1",
        )
    }
    by_params = {r.upgrade_params: r.metadata for r in rows.values()}
    assert by_params['{ "new_memory" : 4294967296 ,\n  "new_cpu":4 }'] == (
        '{"new_cpu":4,"new_memory":4294967296}'
    )
    assert by_params['{"new_disk":107374182400}'] == '{"new_disk":107374182400}'
    assert by_params[None] is None
    invalid = rows[INVALID_PARAMS_ID]
    assert invalid.id is not None  # copied (R3), its text kept verbatim (D18)
    assert json.loads(invalid.metadata) == {"legacy_upgrade_params": invalid.upgrade_params}
    assert json.loads(by_params['{"new_disk":107374182400}']) == {"new_disk": 107374182400}


async def test_r4_pending_invoices_keep_a_safe_time_value(scenario: Scenario) -> None:
    """A pending upgrade keeps 0 (not NULL → no full-interval extension); renewals keep theirs."""
    rows = await fetch(
        scenario.url,
        "SELECT vp.payment_type AS kind, vp.is_paid, vp.time_value AS old, sp.time_value AS new "
        "FROM vm_payment vp JOIN subscription_payment sp ON sp.id = vp.id",
    )
    pending_upgrades = [r for r in rows if r.kind == 1 and not as_bool(r.is_paid)]
    assert pending_upgrades and all(r.new == 0 for r in pending_upgrades)
    paid_upgrades = [r for r in rows if r.kind == 1 and as_bool(r.is_paid)]
    assert paid_upgrades and all(r.new is None for r in paid_upgrades)
    renewals = [r for r in rows if r.kind == int(LegacyPaymentType.RENEWAL)]
    assert renewals and all(r.new == r.old > 0 for r in renewals)


async def test_r5_is_setup_only_for_vms_with_a_paid_payment(scenario: Scenario) -> None:
    subs = await subscriptions(scenario.url)
    for vm_id, case in scenario.fixture.vms.items():
        assert as_bool(subs[vm_id].is_setup) is case.paid, case.label
    assert any(not c.paid for c in scenario.fixture.vms.values())


async def test_r7_no_line_item_amount_in_a_foreign_currency(scenario: Scenario) -> None:
    subs = await subscriptions(scenario.url)
    mismatch = [c for c in scenario.fixture.vms.values() if c.label == "plan-currency-mismatch"]
    assert subs[mismatch[0].id].amount == 0 and subs[mismatch[0].id].currency == "EUR"
    us = next(c for c in scenario.fixture.vms.values() if c.label == "usd-company")
    assert (subs[us.id].amount, subs[us.id].currency) == (1500, "USD")


async def test_r8_bad_legacy_rows_are_reported_and_the_rest_migrates(legacy_url: str) -> None:
    """A VM without expiry is an error; a template-less VM is linked with a warning (R8)."""
    fixture = await legacy_db(legacy_url)
    template_less, no_expiry = sorted(fixture.vms)[:2]
    await execute(
        legacy_url,
        f"UPDATE vm SET template_id = NULL, custom_template_id = NULL WHERE id = {template_less}",
        f"UPDATE vm SET expires = NULL WHERE id = {no_expiry}",
    )
    report = await migrate(legacy_url)
    failed = {e.vm_id: e.message for e in report.errors if e.phase == "phase1"}
    assert set(failed) == {no_expiry}
    assert "no expires" in failed[no_expiry]
    warned = [w.message for w in report.warnings if w.vm_id == template_less]
    assert any("neither template_id nor custom_template_id" in w for w in warned)
    assert report.vms_linked == len(fixture.vms) - 1
    assert (
        await asyncio.to_thread(lnvps_main, ["--db", legacy_url, "migrate-legacy-billing"]) == 1
    )  # D18: non-zero


async def test_r9_payment_owner_is_the_vms_current_owner(scenario: Scenario) -> None:
    wrong = await fetch(
        scenario.url,
        "SELECT sp.id FROM subscription_payment sp JOIN vm_payment vp ON vp.id = sp.id "
        "JOIN vm v ON v.id = vp.vm_id WHERE sp.user_id <> v.user_id",
    )
    assert wrong == []


async def test_payment_id_taken_by_another_subscription_is_reported(legacy_url: str) -> None:
    """§6: the reference failed the whole VM on the unique index; here it is one error."""
    fixture = await legacy_db(legacy_url)
    taken = fixture.payment_ids[0]
    await execute(
        legacy_url,
        "INSERT INTO subscription_payment (id, subscription_id, user_id, expires, amount, "
        "currency, payment_method, payment_type, external_data, rate, tax) "
        f"VALUES (:id, {fixture.non_vm_subscription_id}, 1, CURRENT_TIMESTAMP, 1, 'EUR', 0, 1, "
        "'x', 1, 0)",
        id=taken,
    )
    report = await migrate(legacy_url)
    conflicts = [e for e in report.errors if e.payment_id == taken.hex()]
    assert conflicts and "already exists" in conflicts[0].message
    assert report.payments_copied == len(fixture.payment_ids) - 1


# --- entry points --------------------------------------------------------------------------
async def test_prepare_database_upgrades_then_backfills_and_stops_on_errors(
    legacy_url: str,
) -> None:
    fixture = await legacy_db(legacy_url, upgrade=False)
    await execute(
        legacy_url, "UPDATE vm_payment SET payment_method = 9 WHERE id = :id", id=INVALID_PARAMS_ID
    )
    with pytest.raises(BackfillIncomplete) as caught:
        await prepare_database(legacy_url)
    assert caught.value.report.vms_linked == len(fixture.vms)
    await execute(
        legacy_url, "UPDATE vm_payment SET payment_method = 0 WHERE id = :id", id=INVALID_PARAMS_ID
    )
    report = await prepare_database(legacy_url)
    assert report.ok and report.payments_copied == 1 and report.vms_skipped == len(fixture.vms)


async def test_real_run_refuses_a_database_not_upgraded_yet(legacy_url: str) -> None:
    await legacy_db(legacy_url, upgrade=False)
    with pytest.raises(LegacyShapeError, match="upgrade_database"):
        await migrate(legacy_url)


async def test_cli_dry_run_and_exit_codes(
    legacy_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await legacy_db(legacy_url)
    await execute(
        legacy_url, "UPDATE vm_payment SET payment_method = 9 WHERE id = :id", id=INVALID_PARAMS_ID
    )
    before = await snapshot(legacy_url)
    backfill = ["--db", legacy_url, "migrate-legacy-billing"]
    assert await asyncio.to_thread(lnvps_main, [*backfill, "--dry-run"]) == 1
    assert "DRY RUN" in capsys.readouterr().out
    assert await snapshot(legacy_url) == before
    await execute(
        legacy_url, "UPDATE vm_payment SET payment_method = 0 WHERE id = :id", id=INVALID_PARAMS_ID
    )
    assert await asyncio.to_thread(lnvps_main, backfill) == 0
    assert "OK" in capsys.readouterr().out


async def test_batch_sizes_do_not_change_the_result(legacy_url: str) -> None:
    """Keyset batches of 1 VM / 1 payment give the same rows as one big batch."""
    fixture = await legacy_db(legacy_url)
    report = await migrate(legacy_url, vm_batch=1, payment_batch=1)
    assert report.vms_linked == len(fixture.vms)
    assert report.payments_copied == len(fixture.payment_ids)
    assert report.error_count == 0 and report.warning_count == 2  # R7, R3


async def test_engine_object_is_accepted_and_left_open(legacy_url: str) -> None:
    fixture = await legacy_db(legacy_url)
    engine = create_engine(legacy_url)
    ticks: list[tuple[str, int, int]] = []
    try:
        report = await migrate(
            engine, progress=lambda phase, done, total: ticks.append((phase, done, total))
        )
        async with engine.connect() as conn:  # still usable: not disposed by the backfill
            assert (await conn.execute(select(t.vm.c.id).limit(1))).first() is not None
            if dialect_is_mysql(conn):
                free = await conn.execute(
                    text(f"SELECT IS_FREE_LOCK({of_this_database('n')})"), {"n": LOCK_NAME}
                )
                assert free.scalar() == 1
    finally:
        await engine.dispose()
    assert report.vms_linked == 9
    payments = len(fixture.payment_ids)
    assert ("phase1", 9, 9) in ticks and ticks[-1] == ("phase2", payments, payments)


async def test_a_failing_payment_copy_is_reported_and_the_run_goes_on(legacy_url: str) -> None:
    """A database error while copying a range is one reported error, not an aborted run."""
    fixture = await legacy_db(legacy_url)
    victim = fixture.payment_ids[0]
    condition = "NEW.id = X'" + victim.hex() + "'"
    await add_trigger(legacy_url, "subscription_payment", "INSERT", condition, "fail_copy")
    report = await migrate(legacy_url, payment_batch=3)
    assert report.vms_linked == len(fixture.vms)
    copy_errors = [e for e in report.errors if "copy of id range" in e.message]
    assert len(copy_errors) == 1
    assert report.payments_copied + report.payments_failed == len(fixture.payment_ids)
    assert report.payments_copied >= len(fixture.payment_ids) - 4


# --- drift: the old LNVPS still running after adoption (review r11) ---------------------------
MONTH_SECONDS = 2_592_000
COPY = "SELECT id, is_paid FROM subscription_payment WHERE id = :i"

OF_PAYMENT = (
    "SELECT v.id AS vm_id, v.expires AS vm_expires, s.id AS sub_id, s.expires AS sub_expires "
    "FROM vm_payment p JOIN vm v ON v.id = p.vm_id "
    "JOIN subscription_line_item li ON li.id = v.subscription_line_item_id "
    "JOIN subscription s ON s.id = li.subscription_id WHERE p.id = :i"
)


async def old_lnvps_settles(url: str, payment_id: bytes) -> Any:
    """What the old LNVPS does on a Revolut webhook or a paid invoice: the row paid, and
    `vm.expires` moved on by its time_value. Returns the payment's VM and subscription."""
    (vm_id, vm_expires), *_ = await fetch(
        url, "SELECT v.id, v.expires FROM vm_payment p JOIN vm v ON v.id = p.vm_id "
        "WHERE p.id = :i", i=payment_id,
    )  # fmt: skip
    await execute(
        url,
        "UPDATE vm_payment SET is_paid = 1, paid_at = :t WHERE id = :i",
        t=NOW.replace(tzinfo=None),
        i=payment_id,
    )
    moved = as_dt(vm_expires) + timedelta(seconds=MONTH_SECONDS)
    await execute(url, "UPDATE vm SET expires = :e WHERE id = :v", e=moved, v=vm_id)
    (row,) = await fetch(url, OF_PAYMENT, i=payment_id)
    return row


def drift_errors(report: BackfillReport) -> list[Any]:
    return [e for e in report.errors if e.message.startswith("drift:")]


async def test_drift_a_payment_settled_by_the_old_lnvps_between_runs_is_withheld(
    legacy_url: str,
) -> None:
    """Run 1 links every VM (vm.expires copied) and its Phase 2 fails; the old LNVPS, still
    running, settles a pending renewal (paid, vm.expires + 30 days). The next runs do not copy
    it as settled with the subscription 30 days short: each reports it (not OK), finalization
    is refused, and once the operator brings the subscription's expiry to the legacy one the
    payment is copied and finalization runs (review r11 F1)."""
    fixture = await legacy_db(legacy_url)
    await add_trigger(legacy_url, "subscription_payment", "INSERT", "1 = 1", "fail_copy")
    first = await migrate(legacy_url)
    assert not first.ok and first.vms_linked == len(fixture.vms)
    await execute(legacy_url, "DROP TRIGGER fail_copy")
    std = pid("std-pending")
    row = await old_lnvps_settles(legacy_url, std)
    for _ in range(2):  # reported on every run, nothing changes meanwhile
        report = await migrate(legacy_url)
        assert not report.ok
        drifted = drift_errors(report)
        assert std.hex() in {e.payment_id for e in drifted}
        assert {e.vm_id for e in drifted} == {row.vm_id}
        assert str(as_dt(row.vm_expires))[:19] in drifted[0].message
        assert f"subscription {row.sub_id}" in drifted[0].message
        assert (
            await fetch(legacy_url, "SELECT id FROM subscription_payment WHERE id = :i", i=std)
            == []
        )
        with pytest.raises(FinalizationRefused, match="not copied"):
            await finalize_legacy_billing(legacy_url)
    # resolved: the subscription gets the time the old LNVPS added for the payment
    await execute(
        legacy_url, "UPDATE subscription SET expires = :e WHERE id = :s",
        e=as_dt(row.vm_expires), s=row.sub_id,
    )  # fmt: skip
    report = await migrate(legacy_url)
    assert report.ok, report.summary()
    (copy,) = await fetch(
        legacy_url, "SELECT is_paid FROM subscription_payment WHERE id = :i", i=std
    )
    assert as_bool(copy.is_paid)
    await finalize_legacy_billing(legacy_url)


async def test_drift_a_payment_settled_by_the_old_lnvps_during_the_run(tmp_path: Path) -> None:
    """Inside one run: the old LNVPS settles the renewal after Phase 1 read vm.expires and
    before Phase 2 copies it (from the progress callback between the phases)."""
    import sqlite3

    url = sqlite_url_for(tmp_path / "legacy.db")
    await legacy_db(url)
    std = pid("std-pending")
    settled: list[int] = []

    def old_lnvps(phase: str, done: int, total: int) -> None:
        if phase == "phase1" and not settled:
            db = sqlite3.connect(tmp_path / "legacy.db")
            db.execute("UPDATE vm_payment SET is_paid = 1, paid_at = '2026-03-10 12:00:00' "
                       "WHERE id = ?", (std,))  # fmt: skip
            db.execute(
                "UPDATE vm SET expires = datetime(expires, '+30 days') "
                "WHERE id = (SELECT vm_id FROM vm_payment WHERE id = ?)",
                (std,),
            )
            db.commit()
            db.close()
            settled.append(1)

    report = await migrate(url, progress=old_lnvps)
    assert settled and not report.ok
    assert std.hex() in {e.payment_id for e in drift_errors(report)}
    assert await fetch(url, COPY, i=std) == []


async def test_drift_a_copy_the_old_lnvps_settled_afterwards_is_reported(legacy_url: str) -> None:
    """A successful run copies the pending renewal unpaid; the old LNVPS, brought back,
    settles it. The next run (lnvps's next start) reports it and finalization is refused
    until the copy is settled too. What lnvps itself changed afterwards (completing another
    pending payment, shortening a subscription by a refund) is no drift (review r11 F1)."""
    fixture = await legacy_db(legacy_url)
    assert (await migrate(legacy_url)).ok
    # lnvps's own changes: a late completion of a copied invoice, and a refund's cut
    upgrade = pid("std-upgrade-pending")
    await execute(
        legacy_url, "UPDATE subscription_payment SET is_paid = 1, paid_at = :t WHERE id = :i",
        t=NOW.replace(tzinfo=None), i=upgrade,
    )  # fmt: skip
    refunded = min(fixture.vms)
    await execute(
        legacy_url,
        "UPDATE subscription SET expires = :t WHERE id = (SELECT li.subscription_id FROM vm v "
        "JOIN subscription_line_item li ON li.id = v.subscription_line_item_id WHERE v.id = :v)",
        t=NOW.replace(tzinfo=None),
        v=refunded,
    )
    assert (await migrate(legacy_url)).ok
    std = pid("std-pending")
    row = await old_lnvps_settles(legacy_url, std)
    report = await migrate(legacy_url)
    assert not report.ok
    (drifted,) = drift_errors(report)
    assert (drifted.vm_id, drifted.payment_id) == (row.vm_id, std.hex())
    assert "marked this payment paid" in drifted.message
    assert report.payments_failed == 1
    blockers = await finalization_blockers(legacy_url)
    assert (blockers.uncopied_payments, blockers.paid_only_in_legacy) == (0, 1)
    with pytest.raises(FinalizationRefused, match="1 paid by the old LNVPS"):
        await finalize_legacy_billing(legacy_url)
    assert not (await migrate(legacy_url)).ok  # still there on the next start
    # resolved as the docs say: the copy settled like the original, the time added
    await execute(
        legacy_url,
        "UPDATE subscription_payment SET is_paid = 1, paid_at = :t WHERE id = :i",
        "UPDATE subscription SET expires = :e WHERE id = :s",
        t=NOW.replace(tzinfo=None), i=std, e=as_dt(row.vm_expires), s=row.sub_id,
    )  # fmt: skip
    assert (await migrate(legacy_url)).ok
    await finalize_legacy_billing(legacy_url)


async def test_finalization_keeps_unreadable_upgrade_params(legacy_url: str) -> None:
    """D18: the unreadable text is reported and kept in the copy's metadata, so dropping
    vm_payment at finalization does not destroy it (review r11 F3)."""
    await legacy_db(legacy_url)
    (original,) = await fetch(
        legacy_url, "SELECT upgrade_params FROM vm_payment WHERE id = :i", i=INVALID_PARAMS_ID
    )
    assert (await migrate(legacy_url)).ok
    await finalize_legacy_billing(legacy_url)
    (kept,) = await fetch(
        legacy_url, "SELECT metadata FROM subscription_payment WHERE id = :i", i=INVALID_PARAMS_ID
    )
    assert json.loads(kept.metadata) == {"legacy_upgrade_params": original.upgrade_params}
    assert original.upgrade_params == "{new_cpu: 4"
