"""Storage port of invoices and credit notes: gapless numbers, append only, no update path."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

import attrs

from domain.invoice import CreditNote, Invoice
from ports.storage.common import Page


@attrs.frozen
class InvoiceWindow:
    """The invoices issued in [since, until), of one company when `company_id` is given."""

    since: datetime
    until: datetime
    company_id: int | None = None


#: where a keyset page starts: after the document issued at this time with this id
After = tuple[datetime, int] | None


class Invoices(Protocol):
    """Issued documents are never updated or deleted: there is no method for it.

    `next_seq` takes the (company, series) counter row's lock until the transaction ends, so
    numbers are handed out in commit order: a rolled-back transaction gives its number back
    and concurrent issuers queue, which keeps every series gapless and free of duplicates.
    """

    async def next_seq(self, company_id: int, series: str) -> int:
        """The next number of the series (1 for a new one), counter row locked and advanced."""
        ...

    async def issued_at_of(self, company_id: int, series: str, seq: int) -> datetime | None:
        """When the series' document number `seq` was issued (an invoice, or a credit note
        in a credit note series: the two kinds never share a series name; None: no such
        document), as last committed (MariaDB: a locking read, not the transaction's
        snapshot); call it under the counter lock (`next_seq`) for the number before the
        one just taken."""
        ...

    async def add(self, invoice: Invoice) -> Invoice:
        """Store an issued invoice; DuplicateKey when its payment or number exists already."""
        ...

    async def get(self, invoice_id: int) -> Invoice | None: ...

    async def get_many(self, invoice_ids: Collection[int]) -> dict[int, Invoice]:
        """The invoices with these ids, by id (an unknown id is left out); a fixed number of
        statements whatever the count (SQL: one per 1 000 ids). The export reads the
        invoices a batch of credit notes corrects with it."""
        ...

    async def get_for_update(self, invoice_id: int) -> Invoice | None:
        """Like `get`, and lock the invoice's row until the unit of work ends; call it first
        in the transaction: what is read after it (its credit notes) is what every issuer
        that held the lock before committed, whatever series it numbered in."""
        ...

    async def get_by_payment(self, payment_id: bytes) -> Invoice | None: ...

    async def of_subscription(self, subscription_id: int) -> list[Invoice]:
        """The invoices of the subscription's paid payments, the newest issued first (issue
        time, then id descending), in one statement whatever their number."""
        ...

    async def list_page(self, window: InvoiceWindow, limit: int, offset: int) -> Page[Invoice]:
        """Issued in the window, by issue time then id."""
        ...

    async def invoices_after(
        self, window: InvoiceWindow, after: After, limit: int
    ) -> list[Invoice]:
        """Up to `limit` issued in the window after the key `after` (issue time, id), in that
        order: keyset paging, which a row issued meanwhile cannot shift (OFFSET can)."""
        ...

    async def credit_notes_after(
        self, window: InvoiceWindow, after: After, limit: int
    ) -> list[CreditNote]:
        """Credit notes as `invoices_after` gives invoices (the window by the note's own
        issue time and company)."""
        ...

    async def add_credit_note(self, note: CreditNote) -> CreditNote: ...

    async def credit_notes_of(self, invoice_id: int) -> list[CreditNote]:
        """The invoice's credit notes, oldest first, as last committed (SQL: a locking read),
        so under the invoice's lock they are all its notes, whatever was read before."""
        ...
