"""Invoice numbers and dates run in the same order, on memory, SQLite and MariaDB: a completion
that started earlier (its `paid_at`) but took the series' counter after a later one is dated
as that one; the year's series is still the payment's, and the payment keeps its time."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.memory.clock import FakeClock
from app.billing.completion import apply_payment
from domain.invoice import Invoice
from ports.storage import InvoiceWindow, UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import new_payment, seed_world

database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory

MONTH_S = 31 * 86_400


async def _pending(factory: UnitOfWorkFactory, count: int) -> list[bytes]:
    async with factory() as uow:
        w = await seed_world(uow)
        ids = [
            (await uow.payments.add(new_payment(w.subscription, time_value=MONTH_S))).id
            for _ in range(count)
        ]
        await uow.commit()
    return ids


async def _book_at(factory: UnitOfWorkFactory, payment_id: bytes, when: datetime) -> None:
    """A completion whose clock read `when`: booked now, in call order (as the lock let it)."""
    assert await apply_payment(factory, payment_id, FakeClock(when)) is not None


async def _issued(factory: UnitOfWorkFactory) -> list[Invoice]:
    window = InvoiceWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))
    async with factory() as uow:
        page = await uow.invoices.list_page(window, 100, 0)
    return sorted(page.items, key=lambda i: (i.series, i.seq))


async def test_a_later_numbered_invoice_is_never_dated_earlier(
    uow_factory: UnitOfWorkFactory,
) -> None:
    first, second, third = await _pending(uow_factory, 3)
    late = datetime(2026, 3, 6, 0, 0, 5, tzinfo=UTC)
    early = datetime(2026, 3, 5, 23, 59, 58, tzinfo=UTC)  # the day before: across midnight
    await _book_at(uow_factory, first, late)  # started later, numbered first
    await _book_at(uow_factory, second, early)  # started first
    await _book_at(uow_factory, third, datetime(2026, 3, 7, tzinfo=UTC))
    invoices = await _issued(uow_factory)
    assert [i.number for i in invoices] == ["2026-000001", "2026-000002", "2026-000003"]
    assert [i.issued_at for i in invoices] == [late, late, datetime(2026, 3, 7, tzinfo=UTC)]
    assert [i.document.issued_at for i in invoices] == [i.issued_at for i in invoices]
    async with uow_factory() as uow:
        paid = await uow.payments.get(second)
    assert paid is not None and paid.paid_at == early  # the payment's own


async def test_across_a_year_boundary_each_invoice_keeps_its_years_series_and_date(
    uow_factory: UnitOfWorkFactory,
) -> None:
    december, january = await _pending(uow_factory, 2)
    new_year = datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC)
    old_year = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    await _book_at(uow_factory, january, new_year)
    await _book_at(uow_factory, december, old_year)  # started first, booked second
    invoices = await _issued(uow_factory)
    assert [(i.number, i.issued_at) for i in invoices] == [
        ("2026-000001", old_year),
        ("2027-000001", new_year),
    ]
