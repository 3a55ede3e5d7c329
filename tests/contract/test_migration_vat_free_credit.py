"""r20 on SQLite and MariaDB: credit balances and ledger entries gain `vat_free`; credit
booked before is ordinary (0); a downgrade drops the columns while no VAT-free credit was
booked and refuses, even destroying data, once some was (it would become ordinary credit)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect

from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.migrations import R19_CREDIT_NOTE_REFERENCE, R20_VAT_FREE_CREDIT
from adapters.mysql.migrations.data_guard import DowngradeRefused
from adapters.mysql.schema_upgrade import downgrade_database, upgrade_database
from app.billing.credit_balance import book_in
from domain.account_credit import CreditParts, CreditReason, checked_entry
from tests.contract.lifecycle_world import sql_factory
from tests.contract.storage_backends import at
from tests.contract.test_migration_credit_note_parts import CONTENT

_TABLES = ("user_credit_balance", "user_credit_ledger")


async def _credit_before_r20(url: str) -> None:
    """User 1 with EUR 5.00 of (ordinary) credit, written at r19."""
    await upgrade_database(url, R19_CREDIT_NOTE_REFERENCE)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(tables.users).values(
                    pubkey=b"\x01" * 32, contact_nip17=True, contact_email=False
                )
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO user_credit_ledger (user_id, currency, amount, reason, created)"
                    " VALUES (1, 'EUR', 500, 2, :created)"
                ),
                {"created": at(2).replace(tzinfo=None)},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO user_credit_balance (user_id, currency, balance)"
                    " VALUES (1, 'EUR', 500)"
                )
            )
    finally:
        await engine.dispose()


async def _with_vat_free(url: str) -> dict[str, bool]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: {
                    name: "vat_free" in {c["name"] for c in inspect(sync).get_columns(name)}
                    for name in _TABLES
                }
            )
    finally:
        await engine.dispose()


async def _book(url: str, vat_free: int) -> CreditParts:
    engine = create_engine(url)
    try:
        factory = sql_factory(engine)
        async with factory() as uow:
            await book_in(
                uow,
                checked_entry(
                    user_id=1,
                    currency="EUR",
                    amount=100,
                    reason=CreditReason.OVERPAYMENT,
                    reference=f"up:{vat_free}",
                    note="n",
                    created=at(3),
                    vat_free=vat_free,
                ),
            )
            await uow.commit()
        async with factory() as uow:
            return await uow.credit_ledger.lock_parts(1, "EUR")
    finally:
        await engine.dispose()


async def test_r20_adds_the_vat_free_parts_and_credit_from_before_is_ordinary(
    db_url: str,
) -> None:
    await _credit_before_r20(db_url)
    assert await _with_vat_free(db_url) == dict.fromkeys(_TABLES, False)
    await upgrade_database(db_url, R20_VAT_FREE_CREDIT)
    assert await _with_vat_free(db_url) == dict.fromkeys(_TABLES, True)
    assert await _book(db_url, 0) == CreditParts(600, 0)
    # only ordinary credit: the columns hold no VAT-free credit, and go
    await downgrade_database(db_url, R19_CREDIT_NOTE_REFERENCE)
    assert await _with_vat_free(db_url) == dict.fromkeys(_TABLES, False)
    await upgrade_database(db_url, R20_VAT_FREE_CREDIT)
    assert await _book(db_url, 100) == CreditParts(700, 100)
    for destroy in (False, True):
        with pytest.raises(DowngradeRefused, match="VAT-free account credit was booked"):
            await downgrade_database(db_url, R19_CREDIT_NOTE_REFERENCE, destroy_data=destroy)
    assert await _with_vat_free(db_url) == dict.fromkeys(_TABLES, True)


async def test_r20_lets_an_invoice_net_go_below_zero_and_keeps_such_an_invoice(
    db_url: str,
) -> None:
    """A renewal VAT-free credit paid whole: 1.32 + 0.30 VAT, the 1.62 credit taken off."""
    await _credit_before_r20(db_url)
    await upgrade_database(db_url, R20_VAT_FREE_CREDIT)
    engine = create_engine(db_url)
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
                    net=-30,
                    tax=30,
                    total=0,
                    content=CONTENT.to_json(),
                )
            )
            assert await conn.scalar(sa.select(tables.invoice.c.net)) == -30
    finally:
        await engine.dispose()
    with pytest.raises(DowngradeRefused, match="an invoice has a net below 0"):
        await downgrade_database(db_url, R19_CREDIT_NOTE_REFERENCE, destroy_data=True)
