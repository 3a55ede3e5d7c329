"""Memory repository of account credit: balance rows keyed by (user, currency) and the ledger."""

from __future__ import annotations

from datetime import datetime

from adapters.memory.db import Repo, evolve, page_of
from domain.account_credit import CreditEntry, CreditParts, CreditReason, parts_after
from ports.storage import CreditKey, Page

_BALANCES = "user_credit_balance"
#: the VAT-free part of each balance row (the SQL row's `vat_free` column), by the same key
_VAT_FREE = "user_credit_balance.vat_free"
_LEDGER = "user_credit_ledger"


class MemoryCreditLedger(Repo):
    """The memory unit of work runs alone, so `lock` only creates the row."""

    async def lock(self, user_id: int, currency: str) -> int:
        rows = self._rows(_BALANCES)
        balance: int = rows.setdefault((user_id, currency), 0)
        return balance

    async def lock_parts(self, user_id: int, currency: str) -> CreditParts:
        balance = await self.lock(user_id, currency)
        return CreditParts(balance, self._rows(_VAT_FREE).get((user_id, currency), 0))

    async def book(self, entry: CreditEntry) -> CreditEntry | None:
        parts = await self.lock_parts(entry.user_id, entry.currency)
        booked = CreditKey.of(entry)
        if booked is not None and await self.find(booked):
            return None
        key = (entry.user_id, entry.currency)
        after = parts_after(parts, entry)
        stored = self._insert(_LEDGER, evolve(entry, id=0))
        self._rows(_BALANCES)[key] = after.total
        self._rows(_VAT_FREE)[key] = after.vat_free
        return stored

    async def find(self, key: CreditKey, *, latest: bool = False) -> CreditEntry | None:
        return next((e for e in self._entries() if CreditKey.of(e) == key), None)

    async def balances(self, user_id: int) -> dict[str, int]:
        rows = self._rows(_BALANCES)
        return {cur: amount for (uid, cur), amount in sorted(rows.items()) if uid == user_id}

    async def vat_free_balances(self, user_id: int) -> dict[str, int]:
        rows = self._rows(_VAT_FREE)
        return {cur: amount for (uid, cur), amount in sorted(rows.items()) if uid == user_id}

    async def balance_parts(self, user_id: int) -> dict[str, CreditParts]:
        free = self._rows(_VAT_FREE)
        return {
            cur: CreditParts(amount, free.get((uid, cur), 0))
            for (uid, cur), amount in sorted(self._rows(_BALANCES).items())
            if uid == user_id
        }

    async def list_page(
        self, user_id: int, limit: int, offset: int, *, currency: str | None = None
    ) -> Page[CreditEntry]:
        mine = [
            e
            for e in self._entries()
            if e.user_id == user_id and (currency is None or e.currency == currency)
        ]
        return Page(*page_of(reversed(mine), limit, offset))

    async def list_by_reference(self, reference: str) -> list[CreditEntry]:
        return [e for e in self._entries() if e.reference == reference]

    async def list_unreleased_spent(self, now: datetime, limit: int) -> list[CreditEntry]:
        entries = self._entries()
        payments = self._rows("subscription_payment")
        released = {
            (e.user_id, e.currency, e.reference)
            for e in entries
            if e.reason is CreditReason.RELEASED
        }
        spent = [
            e
            for e in entries
            if e.reason is CreditReason.SPENT
            and e.payment_id is not None
            and (p := payments.get(e.payment_id)) is not None
            and not p.is_paid
            and p.expires <= now
            and (e.user_id, e.currency, e.reference) not in released
        ]
        return spent[:limit]

    def _entries(self) -> list[CreditEntry]:
        return [e for _, e in sorted(self._rows(_LEDGER).items())]
