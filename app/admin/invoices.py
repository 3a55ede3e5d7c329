"""Admin reads of issued invoices: a date window page by page, every invoice and credit note
for export, one invoice with its credit notes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from app.billing.invoicing import InvoiceNotFound
from domain.invoice import CreditNote, Invoice
from ports.storage import InvoiceWindow, Page, UnitOfWork, UnitOfWorkFactory
from ports.storage.invoices import After

T = TypeVar("T")

#: rows read per statement while exporting a window
EXPORT_BATCH = 500


async def list_invoices(
    uow_factory: UnitOfWorkFactory, window: InvoiceWindow, limit: int, offset: int
) -> Page[Invoice]:
    async with uow_factory() as uow:
        return await uow.invoices.list_page(window, limit, offset)


async def every_invoice(
    uow_factory: UnitOfWorkFactory, window: InvoiceWindow, batch: int = EXPORT_BATCH
) -> AsyncIterator[Invoice]:
    """All invoices of the window in issue order, read in batches (one short read each)."""
    async for invoice in _keyset(uow_factory, window, batch, _invoices, lambda i: i):
        yield invoice


async def every_credit_note(
    uow_factory: UnitOfWorkFactory, window: InvoiceWindow, batch: int = EXPORT_BATCH
) -> AsyncIterator[tuple[CreditNote, Invoice]]:
    """All credit notes issued in the window in issue order, each with the invoice it
    corrects (read in the note's batch)."""
    async for found in _keyset(uow_factory, window, batch, _notes, lambda found: found[0]):
        yield found


async def _invoices(
    uow: UnitOfWork, window: InvoiceWindow, after: After, batch: int
) -> list[Invoice]:
    return await uow.invoices.invoices_after(window, after, batch)


async def _notes(
    uow: UnitOfWork, window: InvoiceWindow, after: After, batch: int
) -> list[tuple[CreditNote, Invoice]]:
    """A batch of credit notes and the invoices they correct, read at once (`get_many`)."""
    notes = await uow.invoices.credit_notes_after(window, after, batch)
    corrected = await uow.invoices.get_many({n.invoice_id for n in notes})
    for invoice_id in dict.fromkeys(n.invoice_id for n in notes):
        if invoice_id not in corrected:  # impossible with the foreign key
            raise LookupError(f"credit note of a missing invoice {invoice_id}")
    return [(n, corrected[n.invoice_id]) for n in notes]


async def _keyset(
    uow_factory: UnitOfWorkFactory,
    window: InvoiceWindow,
    batch: int,
    read: Callable[[UnitOfWork, InvoiceWindow, After, int], Awaitable[list[T]]],
    document: Callable[[T], Invoice | CreditNote],
) -> AsyncIterator[T]:
    """Each batch starts after the last document of the one before (issue time, id), not
    at an offset: a document issued while the export runs shifts nothing, so none is left
    out or given twice."""
    after: After = None
    while True:
        async with uow_factory() as uow:
            found = await read(uow, window, after, batch)
        for item in found:
            yield item
        if len(found) < batch:
            return
        last = document(found[-1])
        after = (last.issued_at, last.id)


async def invoice_with_notes(
    uow_factory: UnitOfWorkFactory, invoice_id: int
) -> tuple[Invoice, list[CreditNote]]:
    async with uow_factory() as uow:
        invoice = await uow.invoices.get(invoice_id)
        if invoice is None:
            raise InvoiceNotFound("Invoice not found")
        return invoice, await uow.invoices.credit_notes_of(invoice_id)
