"""r12 on SQLite and MariaDB: existing payments get the interval count of their metadata (in
batches, every one of them), and the column and its index come and go with the revision."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import inspect

from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.migrations import R11_PENDING_PAYMENT_INDEX, R12_PAYMENT_INTERVAL_COUNT
from adapters.mysql.schema_upgrade import downgrade_database, upgrade_database
from tests.contract.storage_backends import at

#: (metadata as the adapter stores it, the column r12 gives it)
ODD: list[tuple[Any, int | None]] = [
    ({"intervals": 3}, 3),
    ({"price": {"amount": 2}, "intervals": 12}, 12),
    ('{"intervals":4}', 4),  # a JSON string holding the object: the reads decode it twice
    ({"intervals": True}, None),
    ({"intervals": 2.0}, None),
    ({"intervals": "5"}, None),
    ({"intervals": None, "amount_msat": 5}, None),
    ({"nested": {"intervals": 6}}, None),
    ({"other": 7}, None),
    ([3], None),
    (None, None),
    ({"intervals": 2**40}, None),
]
#: more rows than one batch of the back-fill reads (1 000)
MANY = 1100


def _payment(n: int, metadata: Any) -> dict[str, Any]:
    return {
        "id": n.to_bytes(32, "big"),
        "subscription_id": 1,
        "user_id": 1,
        "created": at(1),
        "expires": at(2),
        "amount": 100,
        "currency": "EUR",
        "payment_method": 0,
        "payment_type": 1,
        "external_data": "lnbc1",
        "is_paid": n % 2 == 0,
        "rate": Decimal("1"),
        "metadata": metadata,
        "tax": 0,
    }


async def _payments_at_r11(url: str) -> None:
    await upgrade_database(url, R11_PENDING_PAYMENT_INDEX)
    engine = create_engine(url)
    t = tables
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(t.users).values(
                    id=1, pubkey=b"\x01" * 32, contact_nip17=False, contact_email=False
                )
            )
            await conn.execute(
                sa.insert(t.subscription).values(
                    id=1, user_id=1, company_id=1, name="vm", currency="EUR", created=at(1)
                )
            )
            rows = [_payment(n, meta) for n, (meta, _) in enumerate(ODD)]
            rows += [_payment(len(ODD) + n, {"intervals": n % 120 + 1}) for n in range(MANY)]
            await conn.execute(sa.insert(t.subscription_payment), rows)
    finally:
        await engine.dispose()


async def _columns(url: str) -> dict[int, int | None]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            p = tables.subscription_payment.c
            rows = await conn.execute(sa.select(p.id, p.interval_count))
            return {int.from_bytes(row.id, "big"): row.interval_count for row in rows}
    finally:
        await engine.dispose()


async def _payment_shape(url: str) -> tuple[set[str], set[str]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:

            def shape(sync: sa.Connection) -> tuple[set[str], set[str]]:
                inspector = inspect(sync)
                columns = {c["name"] for c in inspector.get_columns("subscription_payment")}
                indexes = {i["name"] for i in inspector.get_indexes("subscription_payment")}
                return columns, {str(name) for name in indexes}

            return await conn.run_sync(shape)
    finally:
        await engine.dispose()


async def test_r12_fills_the_interval_count_of_existing_payments(db_url: str) -> None:
    await _payments_at_r11(db_url)
    await upgrade_database(db_url, R12_PAYMENT_INTERVAL_COUNT)
    found = await _columns(db_url)
    assert [found[n] for n in range(len(ODD))] == [column for _, column in ODD]
    assert [found[len(ODD) + n] for n in range(MANY)] == [n % 120 + 1 for n in range(MANY)]
    columns, indexes = await _payment_shape(db_url)
    assert "interval_count" in columns
    assert {"idx_subscription_payment_pending", "idx_subscription_payment_pending_count"} <= indexes
    await downgrade_database(db_url, R11_PENDING_PAYMENT_INDEX)
    columns, indexes = await _payment_shape(db_url)
    assert "interval_count" not in columns
    assert "idx_subscription_payment_pending_count" not in indexes
    assert "idx_subscription_payment_pending" in indexes
