"""SQL repository of invoices and credit notes (tables of revision r7), no update path."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, insert, select, true
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import IntegrityError

from adapters.mysql import tables as t
from adapters.mysql.in_lists import id_chunks
from adapters.mysql.mapping import Mapper, evolve
from adapters.mysql.repositories import Connect, SqlRepo, is_duplicate_key
from domain.errors import DuplicateKey
from domain.invoice import CreditNote, Invoice
from ports.storage import InvoiceWindow, Page
from ports.storage.invoices import After

_cnt = t.invoice_counter.c
_inv = t.invoice.c


def _after(
    table: Table, mapper: Mapper[Any], window: InvoiceWindow, after: After, limit: int
) -> Select[Any]:
    """The window's documents after the key (issue time, id), in key order (the issue-time
    index carries the id, so the range scan needs no sort)."""
    c = table.c
    where = (c.issued_at >= window.since) & (c.issued_at < window.until)
    if window.company_id is not None:
        where &= c.company_id == window.company_id
    if after is not None:
        at, last = after
        where &= (c.issued_at > at) | ((c.issued_at == at) & (c.id > last))
    return select(*mapper.columns).where(where).order_by(c.issued_at, c.id).limit(limit)


class SqlInvoices(SqlRepo):
    """Counters advance with one upsert that leaves the row locked until the transaction ends
    (MariaDB: INSERT … ON DUPLICATE KEY UPDATE takes the row's exclusive lock; SQLite: the
    write takes the database write lock), so numbers follow commit order without gaps."""

    def __init__(self, connection: Connect, invoice: Mapper[Invoice], note: Mapper[CreditNote]):
        super().__init__(connection)
        self.mapper = invoice
        self.notes = note

    async def next_seq(self, company_id: int, series: str) -> int:
        row = {"company_id": company_id, "series": series, "last_seq": 1}
        if self.locks_rows:
            stmt = mysql.insert(t.invoice_counter).values(row)
            await self.conn.execute(stmt.on_duplicate_key_update(last_seq=_cnt.last_seq + 1))
        else:
            lite = sqlite.insert(t.invoice_counter).values(row)
            await self.conn.execute(
                lite.on_conflict_do_update(
                    index_elements=["company_id", "series"], set_={"last_seq": _cnt.last_seq + 1}
                )
            )
        query = select(_cnt.last_seq).where(_cnt.company_id == company_id, _cnt.series == series)
        return int((await self.conn.execute(query)).scalar_one())

    async def issued_at_of(self, company_id: int, series: str, seq: int) -> datetime | None:
        for table in (t.invoice, t.credit_note):  # series names are never shared
            c = table.c
            where = (c.company_id == company_id) & (c.series == series) & (c.seq == seq)
            query = select(c.issued_at).where(where)
            if self.locks_rows:  # the row as committed, not this transaction's snapshot
                query = query.with_for_update()
            found: datetime | None = (await self.conn.execute(query)).scalar_one_or_none()
            if found is not None:
                return found
        return None

    async def add(self, invoice: Invoice) -> Invoice:
        try:
            result = await self.conn.execute(insert(t.invoice).values(self.mapper.to_row(invoice)))
        except IntegrityError as error:
            if is_duplicate_key(error):
                raise DuplicateKey("An invoice with this payment or number exists") from None
            raise
        key = result.inserted_primary_key
        assert key is not None
        return evolve(invoice, id=int(key[0]))

    async def get(self, invoice_id: int) -> Invoice | None:
        query = select(*self.mapper.columns).where(_inv.id == invoice_id)
        return await self._one(self.mapper, query)

    async def get_many(self, invoice_ids: Collection[int]) -> dict[int, Invoice]:
        out: dict[int, Invoice] = {}
        for ids in id_chunks(invoice_ids):
            query = select(*self.mapper.columns).where(_inv.id.in_(ids))
            out.update((invoice.id, invoice) for invoice in await self._all(self.mapper, query))
        return out

    async def get_for_update(self, invoice_id: int) -> Invoice | None:
        return await self._lock_by_id(t.invoice, invoice_id, self.mapper)

    async def get_by_payment(self, payment_id: bytes) -> Invoice | None:
        query = select(*self.mapper.columns).where(_inv.payment_id == payment_id)
        return await self._one(self.mapper, query)

    async def of_subscription(self, subscription_id: int) -> list[Invoice]:
        pay = t.subscription_payment.c
        query = (
            select(*self.mapper.columns)
            .select_from(t.invoice.join(t.subscription_payment, pay.id == _inv.payment_id))
            .where(pay.subscription_id == subscription_id, pay.is_paid == True)  # noqa: E712
            .order_by(_inv.issued_at.desc(), _inv.id.desc())
        )
        return await self._all(self.mapper, query)

    async def list_page(self, window: InvoiceWindow, limit: int, offset: int) -> Page[Invoice]:
        where = (_inv.issued_at >= window.since) & (_inv.issued_at < window.until)
        company = window.company_id
        where = where & (true() if company is None else _inv.company_id == company)
        return await self._page(self.mapper, where, [_inv.issued_at, _inv.id], limit, offset)

    async def invoices_after(
        self, window: InvoiceWindow, after: After, limit: int
    ) -> list[Invoice]:
        return await self._all(self.mapper, _after(t.invoice, self.mapper, window, after, limit))

    async def credit_notes_after(
        self, window: InvoiceWindow, after: After, limit: int
    ) -> list[CreditNote]:
        query = _after(t.credit_note, self.notes, window, after, limit)
        return await self._all(self.notes, query)

    async def add_credit_note(self, note: CreditNote) -> CreditNote:
        result = await self.conn.execute(insert(t.credit_note).values(self.notes.to_row(note)))
        key = result.inserted_primary_key
        assert key is not None
        return evolve(note, id=int(key[0]))

    async def credit_notes_of(self, invoice_id: int) -> list[CreditNote]:
        c = t.credit_note.c
        query = select(*self.notes.columns).where(c.invoice_id == invoice_id).order_by(c.id)
        if self.locks_rows:
            # MariaDB's REPEATABLE READ snapshot may predate a note a rival committed before
            # this transaction got the invoice's lock (a refund reads other rows first); a
            # locking read sees the notes as last committed
            query = query.with_for_update(read=True)
        return await self._all(self.notes, query)
