"""r15 on SQLite and MariaDB: credit notes gain `net` and `tax`; one issued before keeps NULL
(read as before), a note issued after r15 counts it as the rule splits it and ends on the
invoice's exact net and tax; the columns come and go with the revision."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect

from adapters.memory.clock import FakeClock
from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.migrations import R14_SETTLEMENT_PROBLEMS, R15_CREDIT_NOTE_PARTS
from adapters.mysql.migrations.data_guard import DowngradeRefused
from adapters.mysql.schema_upgrade import downgrade_database, upgrade_database
from app.billing.invoicing import issue_credit_note
from domain.invoice import InvoiceContent, InvoiceLine, Party, stored_note_parts
from tests.contract.lifecycle_world import sql_factory
from tests.contract.storage_backends import at

CONTENT = InvoiceContent(
    seller=Party(name="ACME"),
    buyer=Party(name="Buyer"),
    buyer_npub="npub1x",
    issued_at=at(5),
    supply_from=None,
    supply_to=None,
    currency="EUR",
    lines=(InvoiceLine(description="Renewal: VPS", net=1000, tax_rate=Decimal(23), tax=230),),
    payment_id="05" * 32,
    payment_method="Revolut",
)


async def _note_before_r15(url: str) -> None:
    """A 10.00 + 23 % invoice with a 4.10 credit note, written at r14."""
    await upgrade_database(url, R14_SETTLEMENT_PROBLEMS)
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
                    amount=410,
                    reason="before r15",
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


async def test_r15_adds_the_parts_and_an_old_note_keeps_none(db_url: str) -> None:
    await _note_before_r15(db_url)
    assert not {"net", "tax"} & await _note_columns(db_url)
    await upgrade_database(db_url, R15_CREDIT_NOTE_PARTS)
    assert {"net", "tax"} <= await _note_columns(db_url)
    await upgrade_database(db_url)  # today's code reads the head schema (r19, r20)
    engine = create_engine(db_url)
    try:
        factory = sql_factory(engine)
        clock = FakeClock(at(7))
        second = await issue_credit_note(
            factory, clock, invoice_id=1, amount=410, reason="after r15"
        )
        last = await issue_credit_note(factory, clock, invoice_id=1, amount=410, reason="rest")
        async with factory() as uow:
            invoice = await uow.invoices.get(1)
            old, *new = await uow.invoices.credit_notes_of(1)
    finally:
        await engine.dispose()
    assert invoice is not None
    assert (old.net, old.tax) == (None, None) and stored_note_parts(old, invoice) is None
    assert new == [second, last]
    # the old note counts as 3.33 + 0.77, so the last one ends on the invoice's 10.00 + 2.30
    assert [(n.net, n.tax) for n in new] == [(333, 77), (334, 76)]
    # the parts are data: a plain downgrade refuses to drop them, and changes nothing
    with pytest.raises(DowngradeRefused, match=r"credit_note\.net"):
        await downgrade_database(db_url, R14_SETTLEMENT_PROBLEMS)
    assert {"net", "tax"} <= await _note_columns(db_url)
    await downgrade_database(db_url, R14_SETTLEMENT_PROBLEMS, destroy_data=True)
    assert not {"net", "tax"} & await _note_columns(db_url)
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            count = await conn.scalar(sa.select(sa.func.count()).select_from(tables.credit_note))
    finally:
        await engine.dispose()
    assert count == 3
