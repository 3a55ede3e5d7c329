"""Credit notes on memory, SQLite and MariaDB keep the net and VAT fixed at issue: two partial
notes split at the invoice's rate and a last one taking the rest give back exactly the
invoice's net and tax, as stored and as the CSV export lists them."""

from __future__ import annotations

from decimal import Decimal

import attrs

from adapters.http.admin.routes_invoices import CSV_COLUMNS, note_csv_row
from adapters.memory.clock import FakeClock
from app.billing.invoicing import issue_credit_note
from domain.invoice import Invoice, InvoiceLine
from domain.invoice_content import CREDIT_LINE
from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import at
from tests.contract.test_invoices import _book, _invoices, _world

database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory

#: 15.00 at 23 % less 5.00 of account credit applied, and a 0.30 untaxed fee
LINES = (
    InvoiceLine(description="Renewal: VPS", net=1500, tax_rate=Decimal(23), tax=345),
    InvoiceLine(description=CREDIT_LINE, net=-500, tax_rate=Decimal(23), tax=-115),
    InvoiceLine(description="Payment processing fee", net=30, tax_rate=Decimal(0), tax=0),
)


async def _taxed_invoice(factory: UnitOfWorkFactory) -> Invoice:
    """An invoice of LINES (net 10.30, VAT 2.30), issued next to a booked payment's one."""
    [pid] = await _world(factory, 1, 1)
    assert await _book(factory, pid)
    [booked] = await _invoices(factory)
    content = attrs.evolve(booked.document, lines=LINES, credit_applied=500, credit_line=True)
    async with factory() as uow:
        invoice = await uow.invoices.add(
            attrs.evolve(
                booked,
                id=0,
                seq=2,
                number="2026-000002",
                payment_id=b"\x09" * 32,
                net=content.net,
                tax=content.tax,
                total=content.total,
                content=content.to_json(),
            )
        )
        await uow.commit()
    assert (invoice.net, invoice.tax, invoice.total) == (1030, 230, 1260)
    return invoice


async def test_notes_store_their_vat_and_all_of_them_take_back_exactly_the_invoice(
    uow_factory: UnitOfWorkFactory,
) -> None:
    invoice = await _taxed_invoice(uow_factory)
    clock = FakeClock(at(6))
    issued = [
        await issue_credit_note(
            uow_factory, clock, invoice_id=invoice.id, amount=amount, reason="refund"
        )
        for amount in (123, 500, 637)
    ]
    expected = [(100, 23), (407, 93), (523, 114)]  # the last one: what is left
    assert [(n.net, n.tax) for n in issued] == expected
    async with uow_factory() as uow:
        stored = await uow.invoices.credit_notes_of(invoice.id)
    assert stored == issued
    assert (sum(n.net or 0 for n in stored), sum(n.tax or 0 for n in stored)) == (1030, 230)

    rows = [dict(zip(CSV_COLUMNS, note_csv_row(n, invoice), strict=True)) for n in stored]
    assert [(r["net"], r["tax"], r["total"]) for r in rows] == [
        (str(-net), str(-tax), str(-net - tax)) for net, tax in expected
    ]
    assert sum(int(r["tax"]) for r in rows) == -invoice.tax
