"""r19 on SQLite and MariaDB: credit notes gain `reference` (one note per invoice and
reference); a note issued before has none; the column goes with the revision, not its data."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect

from adapters.memory.clock import FakeClock
from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.migrations import R18_SUBSCRIPTION_SWITCHED_OFF, R19_CREDIT_NOTE_REFERENCE
from adapters.mysql.migrations.data_guard import DowngradeRefused
from adapters.mysql.schema_upgrade import downgrade_database, upgrade_database
from app.billing.invoicing import issue_admin_credit_note
from tests.contract.lifecycle_world import sql_factory
from tests.contract.storage_backends import at
from tests.contract.test_migration_credit_note_parts import CONTENT


async def _note_before_r19(url: str) -> None:
    """A 10.00 + 23 % invoice with a 1.00 credit note, written at r18."""
    await upgrade_database(url, R18_SUBSCRIPTION_SWITCHED_OFF)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(tables.invoice).values(
                    id=1,
                    company_id=1,
                    series="2026",
                    seq=1,
                    number="2026-000001",
                    payment_id=b"\x05" * 32,
                    user_id=1,
                    issued_at=at(5),
                    currency="EUR",
                    net=1000,
                    tax=230,
                    total=1230,
                    content=CONTENT.to_json(),
                )
            )
            await conn.execute(
                sa.insert(tables.invoice_counter),
                [{"company_id": 1, "series": "CN-2026", "last_seq": 1}],
            )
            await conn.execute(
                sa.insert(tables.credit_note).values(
                    id=1,
                    company_id=1,
                    series="CN-2026",
                    seq=1,
                    number="CN-2026-000001",
                    invoice_id=1,
                    issued_at=at(6),
                    currency="EUR",
                    amount=100,
                    reason="before r19",
                    net=81,
                    tax=19,
                )
            )
    finally:
        await engine.dispose()


async def _note_columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("credit_note")}
            )
    finally:
        await engine.dispose()


async def test_r19_adds_the_reference_and_an_old_note_has_none(db_url: str) -> None:
    await _note_before_r19(db_url)
    assert "reference" not in await _note_columns(db_url)
    await upgrade_database(db_url, R19_CREDIT_NOTE_REFERENCE)
    assert "reference" in await _note_columns(db_url)
    await upgrade_database(db_url)  # today's code reads the head schema (r20: `vat_free`)
    engine = create_engine(db_url)
    try:
        factory = sql_factory(engine)
        clock = FakeClock(at(7))
        issued = [
            await issue_admin_credit_note(
                factory, clock, invoice_id=1, amount=50, reason="r", admin_id=9, reference="t-1"
            )
            for _ in range(2)
        ]
        async with factory() as uow:
            old, *new = await uow.invoices.credit_notes_of(1)
    finally:
        await engine.dispose()
    assert old.reference is None
    assert [i.replayed for i in issued] == [False, True]
    assert new == [issued[0].note] and new[0].reference == "t-1"
    # a reference is data: a plain downgrade refuses to drop it, and changes nothing
    with pytest.raises(DowngradeRefused, match=r"credit_note\.reference"):
        await downgrade_database(db_url, R18_SUBSCRIPTION_SWITCHED_OFF)
    assert "reference" in await _note_columns(db_url)
    await downgrade_database(db_url, R18_SUBSCRIPTION_SWITCHED_OFF, destroy_data=True)
    assert "reference" not in await _note_columns(db_url)
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            count = await conn.scalar(sa.select(sa.func.count()).select_from(tables.credit_note))
    finally:
        await engine.dispose()
    assert count == 2
