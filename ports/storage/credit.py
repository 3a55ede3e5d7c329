"""Storage port of account credit: per-currency balances and their append-only ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import attrs

from domain.account_credit import CreditEntry, CreditParts, CreditReason
from ports.storage.common import Page


@attrs.frozen
class CreditKey:
    """What makes a ledger entry unique: one booking per user, currency, reason and reference."""

    user_id: int
    currency: str
    reason: CreditReason
    reference: str

    @classmethod
    def of(cls, entry: CreditEntry) -> CreditKey | None:
        """The entry's key; None when it has no reference (such entries are never deduplicated)."""
        if entry.reference is None:
            return None
        return cls(entry.user_id, entry.currency, entry.reason, entry.reference)


class CreditLedger(Protocol):
    """Balances are kept next to the ledger so one row can be locked; balance = ledger sum.

    `book` (and `lock`, for a caller that reads the balance before deciding) holds the
    user's balance row of that currency (creating it at 0) until the transaction ends, so
    two bookings for one user and currency run one after the other.
    """

    async def lock(self, user_id: int, currency: str) -> int:
        """Lock (creating at 0 if missing) the balance row; return the balance."""
        ...

    async def lock_parts(self, user_id: int, currency: str) -> CreditParts:
        """`lock`, and the balance with its VAT-free part."""
        ...

    async def book(self, entry: CreditEntry) -> CreditEntry | None:
        """Lock the balance row, append `entry` (id 0) and move the balance by its amount
        and its VAT-free part by the entry's (`parts_after`); the stored entry.

        None, and nothing written, when an entry with the same user, currency, reason and
        (non-null) reference exists: the same event is booked once. A balance that would
        go below zero, or either part of it (`parts_after`), raises `InsufficientCredit`
        and writes nothing.
        """
        ...

    async def find(self, key: CreditKey, *, latest: bool = False) -> CreditEntry | None:
        """The entry with this key. `latest`: read what is committed now (a locking read on
        SQL), not the transaction's snapshot; for an entry another transaction has just
        committed (a duplicate key found by `book`)."""
        ...

    async def balances(self, user_id: int) -> dict[str, int]:
        """Every currency the user has a balance row in (zero ones too), by code."""
        ...

    async def vat_free_balances(self, user_id: int) -> dict[str, int]:
        """The VAT-free part of each of the user's balances (`balances`' currencies)."""
        ...

    async def balance_parts(self, user_id: int) -> dict[str, CreditParts]:
        """Every currency the user has a balance row in (zero ones too), by code, with the
        VAT-free part of each: `balances` and `vat_free_balances` in one read."""
        ...

    async def list_page(
        self, user_id: int, limit: int, offset: int, *, currency: str | None = None
    ) -> Page[CreditEntry]:
        """The user's entries newest first (id descending), optionally one currency's."""
        ...

    async def list_by_reference(self, reference: str) -> list[CreditEntry]:
        """Every entry of any user with this reference, oldest first."""
        ...

    async def list_unreleased_spent(self, now: datetime, limit: int) -> list[CreditEntry]:
        """SPENT entries on quotes (`payment_id` set) whose payment is unpaid and no longer
        payable (`expires <= now`) and that have no RELEASED entry of the same user,
        currency and reference yet, oldest first."""
        ...
