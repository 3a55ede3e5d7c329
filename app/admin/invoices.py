"""Admin reads of issued invoices: a date window page by page, every row for export, one with
its credit notes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.billing.invoicing import InvoiceNotFound
from domain.invoice import CreditNote, Invoice
from ports.storage import InvoiceWindow, Page, UnitOfWorkFactory

#: rows read per statement while exporting a window
EXPORT_BATCH = 500


async def list_invoices(
    uow_factory: UnitOfWorkFactory, window: InvoiceWindow, limit: int, offset: int
) -> Page[Invoice]:
    async with uow_factory() as uow:
        return await uow.invoices.list_page(window, limit, offset)


async def every_invoice(
    uow_factory: UnitOfWorkFactory, window: InvoiceWindow
) -> AsyncIterator[Invoice]:
    """All invoices of the window in issue order, read in batches (one short read each)."""
    offset = 0
    while True:
        page = await list_invoices(uow_factory, window, EXPORT_BATCH, offset)
        for invoice in page.items:
            yield invoice
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return


async def invoice_with_notes(
    uow_factory: UnitOfWorkFactory, invoice_id: int
) -> tuple[Invoice, list[CreditNote]]:
    async with uow_factory() as uow:
        invoice = await uow.invoices.get(invoice_id)
        if invoice is None:
            raise InvoiceNotFound("Invoice not found")
        return invoice, await uow.invoices.credit_notes_of(invoice_id)
