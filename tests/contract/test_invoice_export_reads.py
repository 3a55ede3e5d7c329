"""The credit-note export reads the invoices a batch corrects at once, on memory, SQLite and
MariaDB: a fixed number of statements for one note or many (it read one invoice per note)."""

from __future__ import annotations

import pytest

from adapters.memory.clock import FakeClock
from adapters.mysql import in_lists
from app.admin.invoices import every_credit_note
from app.billing.invoicing import issue_credit_note
from domain.invoice import CreditNote, Invoice
from ports.storage import InvoiceWindow
from tests.contract import storage_backends
from tests.contract.storage_backends import Backend, at
from tests.contract.test_invoices import _book, _invoices, _world
from tests.http.test_statement_budgets import Counter, counting

database = storage_backends.database
backend = storage_backends.backend

#: the window's credit notes, and the invoices they correct
EXPORT_BUDGET = 2
WINDOW = InvoiceWindow(at(1), at(28))


async def _booked(backend: Backend, invoices: int) -> list[Invoice]:
    for pid in await _world(backend.factory, invoices, 1):
        assert await _book(backend.factory, pid)
    return await _invoices(backend.factory)


async def _note(backend: Backend, invoice: Invoice, day: int) -> CreditNote:
    clock = FakeClock(at(day))
    return await issue_credit_note(
        backend.factory, clock, invoice_id=invoice.id, amount=10, reason="r"
    )


async def _export(backend: Backend) -> tuple[list[tuple[CreditNote, Invoice]], Counter]:
    assert backend.engine is not None
    with counting(backend.engine) as counter:
        found = [found async for found in every_credit_note(backend.factory, WINDOW)]
    return found, counter


async def test_the_credit_note_export_costs_the_same_statements_for_one_or_many(
    backend: Backend,
) -> None:
    if backend.engine is None:
        pytest.skip("memory storage runs no SQL (its export is checked by test_invoices)")
    invoices = await _booked(backend, 3)
    first = await _note(backend, invoices[0], 6)
    one_found, one = await _export(backend)
    assert one_found == [(first, invoices[0])]

    more = [await _note(backend, invoice, 7) for invoice in (invoices[2], *invoices)]
    many_found, many = await _export(backend)

    assert many_found == [
        (first, invoices[0]),
        *zip(more, (invoices[2], *invoices), strict=True),
    ]
    assert one.count == many.count == EXPORT_BUDGET, (one.statements, many.statements)


async def test_get_many_gives_the_invoices_by_id_and_leaves_unknown_ids_out(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(in_lists, "IN_LIST_SIZE", 2)  # several IN lists on SQL
    invoices = await _booked(backend, 3)
    ids = [i.id for i in invoices]
    async with backend.factory() as uow:
        assert await uow.invoices.get_many([*ids, ids[0], 999_999]) == {i.id: i for i in invoices}
        assert await uow.invoices.get_many([ids[1]]) == {ids[1]: invoices[1]}
        assert await uow.invoices.get_many([]) == {}
