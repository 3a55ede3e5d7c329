"""Alembic revisions: up/down/up on SQLite and MariaDB, head equals tables.py, r1→r2 keeps data."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import IntegrityError, StatementError

from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.migrations import (
    HEAD,
    R1_LEGACY,
    R2_VM_SUBSCRIPTION_LINK,
    R3_ADD_EMAIL_HASH,
    REVISIONS,
)
from adapters.mysql.schema_upgrade import current_revision, downgrade_database, upgrade_database
from adapters.mysql.types import (
    Binary32,
    BitBool,
    CommaList,
    DecimalFloat,
    EnumCode,
    JsonText,
    UBigInt,
    UInt,
    UtcDateTime,
)
from domain.enums import PaymentMethod

EXPIRES = datetime(2026, 4, 30, 10, 20, 30, tzinfo=UTC)
FAR = datetime(2146, 4, 30, 10, 20, 30, tzinfo=UTC)


async def test_every_revision_up_down_up(db_url: str) -> None:
    assert await current_revision(db_url) is None
    for revision in REVISIONS:
        report = await upgrade_database(db_url, revision)
        assert report.to_revision == revision and report.applied == (revision,)
    for revision in reversed(REVISIONS[:-1]):
        await downgrade_database(db_url, revision)
        assert await current_revision(db_url) == revision
    await downgrade_database(db_url, "base")
    assert await current_revision(db_url) is None
    assert await _table_names(db_url) == {"alembic_version"}
    report = await upgrade_database(db_url)
    assert report.applied == REVISIONS and report.to_revision == HEAD
    assert (await upgrade_database(db_url)).applied == ()


async def _table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


# --- head shape -----------------------------------------------------------------------------
def _type_text(type_: Any, dialect: Dialect) -> str:
    text = str(type_.compile(dialect=dialect)).upper()
    text = re.sub(r" (CHARACTER SET|COLLATE) \w+", "", text).replace(" ", "")
    aliases = {
        "JSON": "LONGTEXT",  # MariaDB: JSON is LONGTEXT + JSON_VALID
        "BOOL": "TINYINT(1)",
        "BOOLEAN": "TINYINT(1)" if dialect.name in ("mysql", "mariadb") else "BOOLEAN",
    }
    text = aliases.get(text, text)
    return re.sub(r"^(INTEGER|BIGINT|SMALLINT|TINYINT)\(\d+\)", r"\1", text)  # display width


def _shape(conn: Connection, names: list[str]) -> dict[str, Any]:
    inspector = inspect(conn)
    shape: dict[str, Any] = {}
    for name in names:
        columns = {
            c["name"]: (_type_text(c["type"], conn.dialect), c["nullable"])
            for c in inspector.get_columns(name)
        }
        indexes = {i["name"] for i in inspector.get_indexes(name)}
        indexes |= {u["name"] for u in inspector.get_unique_constraints(name)}
        fks = {f["name"] for f in inspector.get_foreign_keys(name)}
        shape[name] = (columns, indexes, fks)
    return shape


def _expected(dialect: Dialect) -> dict[str, Any]:
    shape: dict[str, Any] = {}
    for table in tables.metadata.sorted_tables:
        columns = {
            c.name: (_type_text(c.type.dialect_impl(dialect), dialect), bool(c.nullable))
            for c in table.columns
        }
        indexes = {str(i.name) for i in table.indexes}
        indexes |= {str(u.name) for u in table.constraints if isinstance(u, sa.UniqueConstraint)}
        fks = {str(f.name) for f in table.foreign_key_constraints}
        shape[table.name] = (columns, indexes, fks)
    return shape


async def test_head_matches_tables_py(migrated_db_url: str) -> None:
    engine = create_engine(migrated_db_url)
    try:
        async with engine.connect() as conn:
            names = sorted(tables.metadata.tables)
            present = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            assert present == {*names, "alembic_version"}
            actual = await conn.run_sync(_shape, names)
            expected = _expected(conn.dialect)
    finally:
        await engine.dispose()
    for name in names:
        columns, indexes, fks = actual[name]
        want_columns, want_indexes, want_fks = expected[name]
        assert columns == want_columns, name
        # MySQL adds an index per FK when none fits; reflected sets may be larger
        assert want_indexes <= indexes, (name, want_indexes - indexes)
        assert fks == want_fks, name


def _unindexed_foreign_keys(conn: Connection) -> list[tuple[str, str]]:
    """Foreign-key columns that no index, unique constraint or primary key leads with."""
    inspector = inspect(conn)
    missing = []
    for table in sorted(tables.metadata.tables):
        leading = {i["column_names"][0] for i in inspector.get_indexes(table)}
        leading |= {u["column_names"][0] for u in inspector.get_unique_constraints(table)}
        leading |= set(inspector.get_pk_constraint(table)["constrained_columns"][:1])
        for fk in inspector.get_foreign_keys(table):
            if fk["constrained_columns"][0] not in leading:
                missing.append((table, fk["constrained_columns"][0]))
    return missing


async def test_every_foreign_key_column_is_indexed_at_head(migrated_db_url: str) -> None:
    """Reads by a parent id (a VM's IP assignments, a user's VMs) use an index on every backend:
    MariaDB makes one per foreign key, SQLite only what r9 creates."""
    engine = create_engine(migrated_db_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_unindexed_foreign_keys) == []
    finally:
        await engine.dispose()


async def test_head_constraints_and_seed(migrated_db_url: str) -> None:
    engine = create_engine(migrated_db_url)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    try:
        async with engine.begin() as conn:
            companies = (await conn.execute(sa.select(tables.company.c.name))).scalars().all()
            assert companies == ["Default Company"]
            roles = (
                await conn.execute(sa.select(tables.admin_roles.c.name).order_by("id"))
            ).scalars()
            assert list(roles)[:2] == ["super_admin", "admin"]
            await conn.execute(
                sa.insert(tables.users).values(
                    pubkey=b"\x01" * 32, contact_nip17=True, contact_email=False
                )
            )
            await conn.execute(
                sa.insert(tables.subscription).values(
                    user_id=1, company_id=1, name="s", currency="EUR", expires=FAR
                )
            )
            # 120 yearly renewals (D6) must fit: TIMESTAMP would end on 2038-01-19
            assert await conn.scalar(sa.select(tables.subscription.c.expires)) == FAR
            mark = {"subscription_id": 1, "action": 2, "period_expires": now}
            await conn.execute(sa.insert(tables.lifecycle_mark).values(mark))
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(sa.insert(tables.lifecycle_mark).values(mark))
        key = {"key": "k1", "user_id": 1, "request_hash": b"\x02" * 32}
        async with engine.begin() as conn:
            await conn.execute(sa.insert(tables.idempotency_key).values(key))
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(sa.insert(tables.idempotency_key).values(key))
    finally:
        await engine.dispose()


# --- r1 → r2 keeps legacy data ---------------------------------------------------------------
def _t(name: str, *columns: str, **typed: Any) -> sa.TableClause:
    cols = [sa.column(c) for c in columns] + [sa.column(c, t) for c, t in typed.items()]
    return sa.table(name, *cols)


async def _insert_legacy_rows(url: str) -> None:
    engine = create_engine(url)
    bit, ts = BitBool(), UtcDateTime()
    rows: list[tuple[sa.TableClause, dict[str, Any]]] = [
        (
            _t("users", "id", "pubkey", contact_nip17=bit, contact_email=bit),
            {"id": 1, "pubkey": b"\x01" * 32, "contact_nip17": True, "contact_email": False},
        ),
        (
            _t("vm_host_region", "id", "name", "company_id", enabled=bit),
            {"id": 1, "name": "r", "company_id": 1, "enabled": True},
        ),
        (
            _t(
                "vm_host",
                "id",
                "kind",
                "region_id",
                "name",
                "ip",
                "cpu",
                "memory",
                "api_token",
                enabled=bit,
            ),
            {
                "id": 1,
                "kind": 0,
                "region_id": 1,
                "name": "h",
                "ip": "x",
                "cpu": 4,
                "memory": 8,
                "api_token": "t",
                "enabled": True,
            },
        ),
        (
            _t("vm_host_disk", "id", "host_id", "name", "size", "kind", "interface", enabled=bit),
            {
                "id": 1,
                "host_id": 1,
                "name": "d",
                "size": 1,
                "kind": 1,
                "interface": 2,
                "enabled": True,
            },
        ),
        (
            _t(
                "vm_os_image",
                "id",
                "distribution",
                "flavour",
                "version",
                "url",
                enabled=bit,
                release_date=ts,
            ),
            {
                "id": 1,
                "distribution": 0,
                "flavour": "server",
                "version": "24.04",
                "url": "u",
                "enabled": True,
                "release_date": EXPIRES,
            },
        ),
        (
            _t("user_ssh_key", "id", "name", "user_id", "key_data"),
            {"id": 1, "name": "k", "user_id": 1, "key_data": "ssh-ed25519 AAA"},
        ),
        (
            _t(
                "vm",
                "id",
                "host_id",
                "user_id",
                "image_id",
                "ssh_key_id",
                "disk_id",
                "mac_address",
                expires=ts,
                auto_renewal_enabled=bit,
            ),
            {
                "id": 1,
                "host_id": 1,
                "user_id": 1,
                "image_id": 1,
                "ssh_key_id": 1,
                "disk_id": 1,
                "mac_address": "aa:bb",
                "expires": EXPIRES,
                "auto_renewal_enabled": True,
            },
        ),
        (
            _t("subscription", "id", "user_id", "company_id", "name", "currency", expires=ts),
            {
                "id": 1,
                "user_id": 1,
                "company_id": 1,
                "name": "ip",
                "currency": "EUR",
                "expires": EXPIRES,
            },
        ),
        (
            _t(
                "subscription_payment",
                "id",
                "subscription_id",
                "user_id",
                "amount",
                "currency",
                "payment_method",
                "payment_type",
                "external_data",
                "rate",
                "tax",
                expires=ts,
            ),
            {
                "id": b"\x09" * 32,
                "subscription_id": 1,
                "user_id": 1,
                "amount": 100,
                "currency": "EUR",
                "payment_method": 1,
                "payment_type": 0,
                "external_data": "{}",
                "rate": 1.0,
                "tax": 0,
                "expires": EXPIRES,
            },
        ),
    ]
    try:
        async with engine.begin() as conn:
            for table, values in rows:
                await conn.execute(sa.insert(table).values(values))
    finally:
        await engine.dispose()


async def test_r1_to_r2_keeps_legacy_data(db_url: str) -> None:
    await upgrade_database(db_url, R1_LEGACY)
    await _insert_legacy_rows(db_url)
    await upgrade_database(db_url, R2_VM_SUBSCRIPTION_LINK)
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            # the columns r2 has (later revisions add more to `tables.vm`)
            vm_cols = tables.vm.c
            at_r2 = (
                vm_cols.expires,
                vm_cols.auto_renewal_enabled,
                vm_cols.subscription_line_item_id,
            )
            vm = (await conn.execute(sa.select(*at_r2))).one()
            assert vm.expires == EXPIRES and vm.auto_renewal_enabled is True
            assert vm.subscription_line_item_id is None
            # (r18 adds a column to `tables.subscription`)
            s = tables.subscription.c
            at_r2_sub = sa.select(s.interval_amount, s.interval_type, s.is_setup, s.expires)
            sub = (await conn.execute(at_r2_sub)).one()
            assert (sub.interval_amount, int(sub.interval_type), sub.is_setup) == (1, 1, False)
            assert sub.expires == EXPIRES
            # (r12 adds a column to `tables.subscription_payment`)
            pay = tables.subscription_payment.c
            payment = (await conn.execute(sa.select(pay.time_value, pay.metadata))).one()
            assert payment.time_value is None and payment.metadata is None
            # new VMs no longer write the legacy columns
            await conn.execute(
                sa.insert(tables.vm).values(
                    id=2,
                    host_id=1,
                    user_id=1,
                    image_id=1,
                    ssh_key_id=1,
                    disk_id=1,
                    mac_address="ff:ff:ff:ff:ff:ff",
                )
            )
            fresh = (await conn.execute(sa.select(*at_r2).where(vm_cols.id == 2))).one()
            assert fresh.expires is None and fresh.auto_renewal_enabled is False
            await conn.execute(sa.delete(tables.vm).where(tables.vm.c.id == 2))
    finally:
        await engine.dispose()
    await upgrade_database(db_url, R3_ADD_EMAIL_HASH)
    await downgrade_database(db_url, R1_LEGACY, destroy_data=True)  # its vm rows stay
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(sa.text("SELECT expires FROM vm WHERE id = 1"))).one()
            assert row[0] is not None
    finally:
        await engine.dispose()


# --- column types on both engines --------------------------------------------------------------
_scratch = sa.Table(
    "type_scratch",
    sa.MetaData(),
    sa.Column("id", UInt, primary_key=True),
    sa.Column("flag", BitBool(), nullable=True),
    sa.Column("at", UtcDateTime(), nullable=True),
    sa.Column("code", EnumCode(PaymentMethod), nullable=True),
    sa.Column("rate", DecimalFloat(), nullable=True),
    sa.Column("doc", JsonText(), nullable=True),
    sa.Column("tags", CommaList(100), nullable=True),
    sa.Column("raw", Binary32, nullable=True),
    sa.Column("big", UBigInt, nullable=True),
)


async def test_column_types_round_trip(db_url: str) -> None:
    engine = create_engine(db_url)
    at = datetime(2026, 1, 31, 23, 59, 59, 987654, tzinfo=timezone(timedelta(hours=2)))
    row = {
        "id": 1,
        "flag": True,
        "at": at,
        "code": PaymentMethod.STRIPE,
        "rate": Decimal("92345.67"),
        "doc": {"a": [1, "ü"]},
        "tags": (" AVX2", "AES", ""),
        "raw": b"\x00" * 31 + b"\x01",
        "big": 2**40,
    }
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_scratch.metadata.create_all)
            await conn.execute(sa.insert(_scratch).values(row))
            await conn.execute(sa.insert(_scratch).values(id=2, flag=False))
            got = (await conn.execute(sa.select(_scratch).where(_scratch.c.id == 1))).one()
            assert got.flag is True and got.code is PaymentMethod.STRIPE
            assert got.at == at.replace(microsecond=0) and got.at.tzinfo is UTC
            assert got.rate == Decimal("92345.7")  # 6 significant digits (f32 column)
            assert got.doc == {"a": [1, "ü"]} and got.tags == ("AVX2", "AES")
            assert got.raw == row["raw"] and got.big == 2**40
            other = (await conn.execute(sa.select(_scratch).where(_scratch.c.id == 2))).one()
            assert other.flag is False and other.at is None and other.doc is None
            count = await conn.scalar(
                sa.select(sa.func.count()).where(_scratch.c.flag == sa.true())
            )
            assert count == 1
            await conn.execute(sa.text("UPDATE type_scratch SET code = 9 WHERE id = 2"))
            with pytest.raises(ValueError, match="9"):
                await conn.scalar(sa.select(_scratch.c.code).where(_scratch.c.id == 2))
        with pytest.raises(StatementError, match="naive datetime refused"):
            async with engine.begin() as conn:
                await conn.execute(
                    sa.insert(_scratch).values(id=3, at=datetime(2026, 1, 1))  # noqa: DTZ001
                )
        with pytest.raises(StatementError, match="Decimal or int"):
            async with engine.begin() as conn:
                await conn.execute(sa.insert(_scratch).values(id=3, rate=1.5))
    finally:
        await engine.dispose()
