"""Memory repository of invoices and credit notes, with the per-series counters."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import TypeVar

from adapters.memory.db import Repo, evolve, page_of
from domain.errors import DuplicateKey
from domain.invoice import CreditNote, Invoice
from ports.storage import InvoiceWindow, Page
from ports.storage.invoices import After

_INVOICES, _NOTES, _COUNTERS = "invoice", "credit_note", "invoice_counter"
D = TypeVar("D", Invoice, CreditNote)


def _after(rows: Iterable[D], window: InvoiceWindow, after: After, limit: int) -> list[D]:
    """The window's documents after the key (issue time, id), in key order."""
    found = sorted(
        (
            r
            for r in rows
            if window.since <= r.issued_at < window.until
            and window.company_id in (None, r.company_id)
            and (after is None or (r.issued_at, r.id) > after)
        ),
        key=lambda r: (r.issued_at, r.id),
    )
    return found[:limit]


class MemoryInvoices(Repo):
    """The unit of work's lock serialises issuers, as the counter row lock does in SQL."""

    async def next_seq(self, company_id: int, series: str) -> int:
        counters = self._rows(_COUNTERS)
        seq = int(counters.get((company_id, series), 0)) + 1
        counters[(company_id, series)] = seq
        return seq

    async def issued_at_of(self, company_id: int, series: str, seq: int) -> datetime | None:
        for table in (_INVOICES, _NOTES):  # series names are never shared
            for row in self._rows(table).values():
                if (row.company_id, row.series, row.seq) == (company_id, series, seq):
                    found: datetime = row.issued_at
                    return found
        return None

    async def add(self, invoice: Invoice) -> Invoice:
        for other in self._rows(_INVOICES).values():
            if other.payment_id == invoice.payment_id or (
                (other.company_id, other.series, other.seq)
                == (invoice.company_id, invoice.series, invoice.seq)
            ):
                raise DuplicateKey("An invoice with this payment or number exists")
        return self._insert(_INVOICES, invoice)

    async def get(self, invoice_id: int) -> Invoice | None:
        found: Invoice | None = self._rows(_INVOICES).get(invoice_id)
        return found

    async def get_many(self, invoice_ids: Collection[int]) -> dict[int, Invoice]:
        rows = self._rows(_INVOICES)
        return {i: rows[i] for i in sorted(set(invoice_ids)) if i in rows}

    async def get_for_update(self, invoice_id: int) -> Invoice | None:
        return await self.get(invoice_id)  # the unit of work's lock already serialises

    async def get_by_payment(self, payment_id: bytes) -> Invoice | None:
        for row in self._rows(_INVOICES).values():
            if row.payment_id == payment_id:
                found: Invoice = row
                return found
        return None

    async def of_subscription(self, subscription_id: int) -> list[Invoice]:
        payments = self._rows("subscription_payment")
        paid = {
            p.id for p in payments.values() if p.subscription_id == subscription_id and p.is_paid
        }
        found: list[Invoice] = [r for r in self._rows(_INVOICES).values() if r.payment_id in paid]
        return sorted(found, key=lambda r: (r.issued_at, r.id), reverse=True)

    async def list_page(self, window: InvoiceWindow, limit: int, offset: int) -> Page[Invoice]:
        rows: list[Invoice] = [
            r
            for r in self._rows(_INVOICES).values()
            if window.since <= r.issued_at < window.until
            and window.company_id in (None, r.company_id)
        ]
        rows.sort(key=lambda r: (r.issued_at, r.id))
        return Page(*page_of(rows, limit, offset))

    async def invoices_after(
        self, window: InvoiceWindow, after: After, limit: int
    ) -> list[Invoice]:
        return _after(self._rows(_INVOICES).values(), window, after, limit)

    async def credit_notes_after(
        self, window: InvoiceWindow, after: After, limit: int
    ) -> list[CreditNote]:
        return _after(self._rows(_NOTES).values(), window, after, limit)

    async def add_credit_note(self, note: CreditNote) -> CreditNote:
        for other in self._rows(_NOTES).values():
            if (other.company_id, other.series, other.seq) == (
                note.company_id,
                note.series,
                note.seq,
            ):
                raise DuplicateKey("A credit note with this number exists")
            if note.reference is not None and (other.invoice_id, other.reference) == (
                note.invoice_id,
                note.reference,
            ):
                raise DuplicateKey("A credit note with this reference exists")
        return self._insert(_NOTES, evolve(note))

    async def credit_notes_of(self, invoice_id: int) -> list[CreditNote]:
        return [n for _, n in sorted(self._rows(_NOTES).items()) if n.invoice_id == invoice_id]
