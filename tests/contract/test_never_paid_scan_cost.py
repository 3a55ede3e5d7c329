"""The never-paid cleanup's scan reads the orders of its window, however many never-paid
subscriptions were made before it (MariaDB rows read, counted by the server; the SQLite plan)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from adapters.mysql.uow import SqlUnitOfWork
from domain.enums import SubscriptionType
from domain.model import LineItem, Subscription
from ports.storage import NEVER_PAID_CLEANUP, NeverPaidWindow, UnitOfWork
from tests.contract import storage_backends
from tests.contract.storage_backends import Backend, World, at, new_payment, seed_world
from tests.sql_events import listening

database = storage_backends.database
IP = SubscriptionType.IP_RANGE
backend = storage_backends.backend

HISTORY = 300  # never-paid subscriptions made before the window


async def _order(
    uow: UnitOfWork, w: World, made: datetime, kind: SubscriptionType = SubscriptionType.IP_RANGE
) -> Subscription:
    sub, _ = await uow.subscriptions.add_with_line_items(
        Subscription(
            id=0, user_id=w.user.id, company_id=w.company.id, name="x", created=made, currency="EUR"
        ),
        [LineItem(id=0, subscription_id=0, subscription_type=kind, name="x", amount=1000)],
    )
    return sub


async def _window_behind_history(
    backend: Backend, vms: bool = True
) -> tuple[NeverPaidWindow, list[int]]:
    """HISTORY never-paid orders made in February, each with an unpaid invoice long expired:
    IP-range ones cancelled (marked), IP-range ones paid (booked as credit), VM ones (or, not
    `vms`, more cancelled IP-range ones). Then 3 due ones in the window (March)."""
    async with backend.factory() as uow:
        w = await seed_world(uow)
        for n in range(HISTORY):
            made = at(1, month=2) + timedelta(minutes=n)
            vm = vms and n % 3 == 2
            old = await _order(uow, w, made, SubscriptionType.VPS if vm else IP)
            await uow.payments.add(new_payment(old, created=made, expires=made))
            if n % 3 == 0 or (n % 3 == 2 and not vm):
                assert await uow.lifecycle_marks.claim(old.id, NEVER_PAID_CLEANUP, made, made)
            elif n % 3 == 1:
                await uow.payments.add(new_payment(old, created=made, is_paid=True))
        due = [await _order(uow, w, at(10) + timedelta(minutes=n)) for n in range(3)]
        await uow.commit()
    return NeverPaidWindow(at(5), at(20), at(20)), [s.id for s in due]


async def _rows_read(uow: SqlUnitOfWork) -> int:
    found = await uow._connection().execute(text("SHOW SESSION STATUS LIKE 'Handler_read%'"))
    return sum(int(value) for name, value in found if name != "Handler_read_key")


@storage_backends.only("mysql")
@pytest.mark.parametrize("vms", [True, False], ids=["with-vm-orders", "ip-range-orders"])
async def test_the_scan_reads_only_the_window(backend: Backend, vms: bool) -> None:
    """Without VM orders behind, IP-range line items are many among few others: as an
    EXISTS, MariaDB read them all (a semi-join) rather than look each subscription's up."""
    window, due = await _window_behind_history(backend, vms)
    async with backend.factory() as uow:
        assert isinstance(uow, SqlUnitOfWork)
        # the subscriptions' statistics fresh, their line items' as InnoDB left them (stale
        # ones are common: they are recounted only after a tenth of a table has changed)
        await uow._connection().execute(text("ANALYZE TABLE subscription"))
        before = await _rows_read(uow)
        found = await uow.subscriptions.list_never_paid_ip_ranges(window, 100)
        read = await _rows_read(uow) - before
    assert [s.id for s in found] == due
    # the 3 in the window and their subqueries' rows (line items, marks, payments by index)
    assert read <= 12, f"{read} rows read for 3 due among {HISTORY + 3} never-paid"


@storage_backends.only("sqlite")
async def test_the_scan_is_one_index_range_on_sqlite(backend: Backend) -> None:
    assert backend.engine is not None
    window, due = await _window_behind_history(backend)
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        if "FROM subscription" in statement and "LIMIT" in statement:
            seen.append((statement, params))

    with listening(backend.engine, "before_cursor_execute", capture):
        async with backend.factory() as uow:
            found = await uow.subscriptions.list_never_paid_ip_ranges(window, 100)
    assert [s.id for s in found] == due
    [(statement, params)] = seen
    async with backend.engine.connect() as conn:
        plan = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)).all()
    outer = [str(row[-1]) for row in plan if "subscription " in f"{row[-1]} "]
    assert any(
        "idx_subscription_never_paid (expires=? AND created>? AND created<?)" in step
        for step in outer
    ), plan
