"""`lnvps db downgrade` never destroys data by accident: a downgrade that would drop a table or
column holding data is refused before any DDL (nothing changes), `--destroy-data` is needed to
drop it, and on an adopted LNVPS database the revisions mirroring LNVPS's own migrations cannot
be undone at all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import inspect

from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.migrations import (
    HEAD,
    R1_LEGACY,
    R3_ADD_EMAIL_HASH,
    R13_AUDIT_SECRETS_REDACTED,
    alembic_config,
)
from adapters.mysql.schema_upgrade import (
    DowngradeRefused,
    current_revision,
    downgrade_database,
    upgrade_database,
)
from domain.enums import PaymentMethod, SubscriptionPaymentType
from lnvps.cli import main as lnvps
from tests.contract.test_adopt_and_backfill import LEGACY_ROWS
from tests.contract.test_adoption import LEGACY_DDL, LEGACY_VERSIONS, _run, _sqlx_rows

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
#: columns of a `settlement_problem` row (r14)
PROBLEM = ("payment_id", "settle_index", "amount_paid_msat", "error", "message", "created")


def _new_id(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


async def _add_paid_payment(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            made = await conn.execute(
                sa.insert(tables.users).values(
                    pubkey=b"\x07" * 32, contact_nip17=True, contact_email=False
                )
            )
            user_id = _new_id(made)
            made = await conn.execute(
                sa.insert(tables.subscription).values(
                    user_id=user_id,
                    company_id=1,
                    name="s",
                    created=AT,
                    currency="EUR",
                )
            )
            await conn.execute(
                sa.insert(tables.subscription_payment).values(
                    id=b"\x01" * 32,
                    subscription_id=_new_id(made),
                    user_id=user_id,
                    created=AT,
                    expires=AT,
                    amount=1320,
                    currency="EUR",
                    payment_method=PaymentMethod.REVOLUT,
                    payment_type=SubscriptionPaymentType.PURCHASE,
                    external_data="x",
                    is_paid=True,
                    rate=1,
                    tax=0,
                )
            )
    finally:
        await engine.dispose()


async def _snapshot(url: str) -> dict[str, Any]:
    """Every table with its columns, the revision, and the payment rows."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:

            def shape(sync: sa.Connection) -> dict[str, list[str]]:
                inspector = inspect(sync)
                return {
                    name: sorted(c["name"] for c in inspector.get_columns(name))
                    for name in sorted(inspector.get_table_names())
                }

            payments = (
                await conn.execute(sa.text("SELECT id, amount, currency FROM subscription_payment"))
            ).all()
            return {
                "shape": await conn.run_sync(shape),
                "payments": [tuple(row) for row in payments],
            }
    finally:
        await engine.dispose()


async def test_a_downgrade_that_would_drop_payments_is_refused_and_changes_nothing(
    migrated_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = migrated_db_url
    await _add_paid_payment(url)
    before = await _snapshot(url)
    with pytest.raises(DowngradeRefused, match=r"table subscription_payment holds rows"):
        await downgrade_database(url, "base")
    # r2 drops subscription.is_setup and friends: refused too, and the CLI says so
    assert await asyncio.to_thread(lnvps, ["--db", url, "db", "downgrade", R1_LEGACY]) == 3
    assert "column subscription.is_setup holds values" in capsys.readouterr().err
    assert await _snapshot(url) == before
    assert await current_revision(url) == HEAD
    # asked for explicitly, the destructive downgrade runs
    await downgrade_database(url, R1_LEGACY, destroy_data=True)
    assert await current_revision(url) == R1_LEGACY
    assert (await _snapshot(url))["payments"] == before["payments"]  # r1's tables are kept


async def test_an_adopted_lnvps_database_cannot_be_downgraded_below_adoption(
    mysql_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await _run(mysql_url, LEGACY_DDL, _sqlx_rows(*LEGACY_VERSIONS), LEGACY_ROWS)
    assert await asyncio.to_thread(lnvps, ["--db", mysql_url, "db", "upgrade"]) == 0
    assert await asyncio.to_thread(lnvps, ["--db", mysql_url, "migrate-legacy-billing"]) == 0
    before = await _snapshot(mysql_url)
    for flags in ([], ["--destroy-data"]):
        code = await asyncio.to_thread(
            lnvps, ["--db", mysql_url, "db", "downgrade", "base", *flags]
        )
        assert code == 3
        err = capsys.readouterr().err
        assert f"{R1_LEGACY} is LNVPS's own sqlx migration 20260225000001" in err
        assert await _snapshot(mysql_url) == before
        assert await current_revision(mysql_url) == HEAD


async def test_a_direct_alembic_downgrade_is_refused_by_the_revisions_own_guard(
    migrated_db_url: str,
) -> None:
    """Alembic's own `command.downgrade`, handed a connection, skips `downgrade_database` and
    its check of every step: each revision's `downgrade()` still refuses to drop data."""
    url = migrated_db_url
    engine = create_engine(url, foreign_keys=False)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(sa.table("settlement_problem", *map(sa.column, PROBLEM))),
                [dict(zip(PROBLEM, (b"\x05" * 32, 7, 1000, "unknown", "kept", AT), strict=True))],
            )

        def alembic_downgrade(sync: sa.Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = sync
            command.downgrade(config, R13_AUDIT_SECRETS_REDACTED)

        async with engine.connect() as conn:
            with pytest.raises(DowngradeRefused, match="table settlement_problem holds rows"):
                await conn.run_sync(alembic_downgrade)
        async with engine.connect() as conn:
            kept = (await conn.execute(sa.text("SELECT message FROM settlement_problem"))).all()
        assert [tuple(row) for row in kept] == [("kept",)]
    finally:
        await engine.dispose()


async def test_a_downgrade_below_r4_refuses_an_expiry_beyond_2038_before_any_change(
    mysql_url: str,
) -> None:
    """r4's downgrade turns `subscription.expires` back into a TIMESTAMP (ends 2038-01-19):
    an expiry beyond it (D6 allows 120 intervals) is refused before the first DDL, with or
    without --destroy-data, instead of failing half-way with the revisions above undone."""
    url = mysql_url
    await upgrade_database(url)
    await _add_paid_payment(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE subscription SET expires = '2040-01-01 00:00:00'"))
    finally:
        await engine.dispose()
    before = await _snapshot(url)
    for destroy in (False, True):
        with pytest.raises(DowngradeRefused, match="outside the TIMESTAMP range"):
            await downgrade_database(url, R3_ADD_EMAIL_HASH, destroy_data=destroy)
        assert await current_revision(url) == HEAD
        assert await _snapshot(url) == before
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE subscription SET expires = '2037-12-31 00:00:00'"))
    finally:
        await engine.dispose()
    await downgrade_database(url, R3_ADD_EMAIL_HASH, destroy_data=True)  # it fits: runs
    assert await current_revision(url) == R3_ADD_EMAIL_HASH
