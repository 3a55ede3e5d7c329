"""Long tails on an index: a 50 000-row backlog walked by keyset, unpaid payments by method."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, text

from adapters.mysql import tables
from domain.enums import PaymentMethod
from domain.model import Subscription
from ports.storage import DueWindow
from tests.contract import storage_backends
from tests.contract.storage_backends import (
    Backend,
    World,
    at,
    new_payment,
    new_subscription,
    seed_world,
)
from tests.sql_events import listening

# pytest fixtures: every test here runs on memory, SQLite and MariaDB
database = storage_backends.database
backend = storage_backends.backend

BACKLOG = 50_000
PAGE = 5_000


async def _bulk_backlog(backend: Backend, w: World) -> None:
    """BACKLOG active subscriptions expired before at(20), many sharing one expiry second."""
    rows = [
        {
            "user_id": w.user.id,
            "company_id": w.company.id,
            "name": "VPS",
            "created": at(1),
            # 1 000 distinct seconds, 50 rows each: the cursor must break ties by id
            "expires": at(10) + timedelta(seconds=(n * 7919) % 1000),
            "is_active": True,
            "currency": "EUR",
        }
        for n in range(BACKLOG)
    ]
    if backend.engine is None:
        async with backend.factory() as uow:
            for row in rows:
                sub = new_subscription(
                    w.user.id, w.company.id, is_active=True, expires=row["expires"]
                )
                await uow.subscriptions.add_with_line_items(sub, [])
            await uow.commit()
        return
    async with backend.engine.begin() as conn:
        await conn.execute(insert(tables.subscription), rows)


async def test_a_backlog_of_50000_is_walked_completely_oldest_first(backend: Backend) -> None:
    async with backend.factory() as uow:
        w = await seed_world(uow)
        await uow.commit()
    await _bulk_backlog(backend, w)
    async with backend.factory() as uow:  # an expiring-soon one, after the backlog in order
        soon, _ = await uow.subscriptions.add_with_line_items(
            new_subscription(w.user.id, w.company.id, is_active=True, expires=at(20, 18)), []
        )
        await uow.commit()
    now = at(20)
    seen: list[Subscription] = []
    cursor: tuple[datetime, int] | None = None
    pages = 0
    while True:
        async with backend.factory() as uow:
            page = await uow.subscriptions.list_due(
                DueWindow(now, timedelta(0), after=cursor), PAGE
            )
        pages += 1
        if page:
            last = page[-1]
            assert last.expires is not None
            cursor = (last.expires, last.id)
        assert len(page) <= PAGE
        seen += page
        if len(page) < PAGE:
            break
    assert len(seen) == BACKLOG  # none lost, none twice
    assert len({s.id for s in seen}) == BACKLOG
    keys = [(s.expires, s.id) for s in seen]
    assert keys == sorted(keys)  # oldest first across pages
    assert pages == BACKLOG // PAGE + 1
    async with backend.factory() as uow:  # the notices' own query is not behind the backlog
        notices = await uow.subscriptions.list_due(DueWindow(now, timedelta(days=1), since=now), 10)
    assert [s.id for s in notices] == [soon.id]


@storage_backends.only("mysql")
async def test_reconciliation_reads_unpaid_payments_on_an_index(backend: Backend) -> None:
    """MariaDB's plan for `list_unpaid_by_method` is a range on (method, is_paid, created)."""
    assert backend.engine is not None
    async with backend.factory() as uow:
        w = await seed_world(uow)
        for n in range(300):
            await uow.payments.add(
                new_payment(
                    w.subscription,
                    created=at(1) + timedelta(hours=n),
                    is_paid=n % 3 == 0,
                    payment_method=PaymentMethod.LIGHTNING if n % 2 else PaymentMethod.REVOLUT,
                )
            )
        await uow.commit()
    async with backend.engine.connect() as conn:
        await conn.execute(text("ANALYZE TABLE subscription_payment"))
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        if "FROM subscription_payment" in statement:
            seen.append((statement, params))

    with listening(backend.engine, "before_cursor_execute", capture):
        async with backend.factory() as uow:
            found = await uow.payments.list_unpaid_by_method(PaymentMethod.LIGHTNING, at(10), 50)
    assert found and all(not p.is_paid for p in found)
    statement, params = seen[-1]
    async with backend.engine.connect() as conn:
        result = await conn.exec_driver_sql("EXPLAIN " + statement, params)
        plan = dict(result.mappings().one())
    assert plan["key"] == "idx_subscription_payment_unpaid_method", plan
    assert plan["type"] == "range", plan
