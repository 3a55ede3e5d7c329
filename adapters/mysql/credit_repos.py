"""SQL repository of account credit (tables `user_credit_balance`, `user_credit_ledger`, r8)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from adapters.mysql import tables as t
from adapters.mysql.mapping import Mapper, evolve
from adapters.mysql.repositories import Connect, SqlRepo, is_duplicate_key
from domain.account_credit import (
    CreditEntry,
    CreditParts,
    CreditReason,
    InsufficientCredit,
    parts_after,
)
from ports.storage import CreditKey, Page

_bal = t.user_credit_balance.c
_led = t.user_credit_ledger.c
#: built once (issue 10: no statement building per renewal)
_BALANCES = (
    select(_bal.currency, _bal.balance)
    .where(_bal.user_id == bindparam("user_id"))
    .order_by(_bal.currency)
)
_VAT_FREE = (
    select(_bal.currency, _bal.vat_free)
    .where(_bal.user_id == bindparam("user_id"))
    .order_by(_bal.currency)
)
_PARTS = (
    select(_bal.currency, _bal.balance, _bal.vat_free)
    .where(_bal.user_id == bindparam("user_id"))
    .order_by(_bal.currency)
)


class SqlCreditLedger(SqlRepo):
    """`lock` is `SELECT … FOR UPDATE` on MariaDB; on SQLite a no-op write takes the database
    write lock, so a concurrent read-modify-write waits as it would on the row lock."""

    def __init__(self, connection: Connect, mapper: Mapper[CreditEntry]) -> None:
        super().__init__(connection)
        self.mapper = mapper

    async def lock(self, user_id: int, currency: str) -> int:
        return (await self.lock_parts(user_id, currency)).total

    async def lock_parts(self, user_id: int, currency: str) -> CreditParts:
        """MariaDB: the user's row is locked first (it always exists), so creating a missing
        balance row never races another transaction's gap lock (two or three first bookings
        of one user deadlocked on it); call it before this transaction inserts anything that
        references the user, or its foreign-key share lock must be upgraded."""
        row = {"user_id": user_id, "currency": currency, "balance": 0}
        where = (_bal.user_id == user_id) & (_bal.currency == currency)
        if self.locks_rows:
            user = select(t.users.c.id).where(t.users.c.id == user_id).with_for_update()
            await self.conn.execute(user)
            upsert = mysql_insert(t.user_credit_balance).values(row)
            await self.conn.execute(upsert.on_duplicate_key_update(balance=_bal.balance))
            query = select(_bal.balance, _bal.vat_free).where(where).with_for_update()
        else:
            # SQLite: a write first takes the database write lock, then the row is created
            await self.conn.execute(
                update(t.user_credit_balance).where(where).values(balance=_bal.balance)
            )
            await self.conn.execute(
                sqlite_insert(t.user_credit_balance).values(row).on_conflict_do_nothing()
            )
            query = select(_bal.balance, _bal.vat_free).where(where)
        found = (await self.conn.execute(query)).first()
        if found is None:  # impossible: the row was just created or found
            raise LookupError(f"no credit balance row for user {user_id} {currency}")
        return CreditParts(int(found[0]), int(found[1]))

    async def book(self, entry: CreditEntry) -> CreditEntry | None:
        parts = await self.lock_parts(entry.user_id, entry.currency)  # before the dup check
        key = CreditKey.of(entry)
        if key is not None and await self.find(key):
            return None
        try:
            after = parts_after(parts, entry)
        except InsufficientCredit:
            # the look above reads MariaDB's snapshot, which may predate an identical
            # booking committed before the balance lock was granted (its debit is why the
            # balance is short): that is a replay, not a refusal. A locking read, taken only
            # here: on a missing key it locks the index gap, which the INSERT path must not
            if key is not None and await self.find(key, latest=True):
                return None
            raise
        try:
            result = await self.conn.execute(
                insert(t.user_credit_ledger).values(self.mapper.to_row(entry))
            )
        except IntegrityError as error:
            if entry.reference is not None and is_duplicate_key(error):
                return None
            raise
        key = result.inserted_primary_key
        if key is None:
            raise RuntimeError("user_credit_ledger: insert returned no id")
        where = (_bal.user_id == entry.user_id) & (_bal.currency == entry.currency)
        moved = update(t.user_credit_balance).where(where)
        await self.conn.execute(moved.values(balance=after.total, vat_free=after.vat_free))
        return evolve(entry, id=int(key[0]))

    async def find(self, key: CreditKey, *, latest: bool = False) -> CreditEntry | None:
        query = select(*self.mapper.columns).where(
            _led.user_id == key.user_id,
            _led.currency == key.currency,
            _led.reason == key.reason,
            _led.reference == key.reference,
        )
        if latest and self.locks_rows:
            # MariaDB's REPEATABLE READ snapshot may predate the row a concurrent booking
            # committed; a locking read sees it (the row exists: a record lock, no gap lock)
            query = query.with_for_update()
        return await self._one(self.mapper, query)

    async def balances(self, user_id: int) -> dict[str, int]:
        rows = (await self.conn.execute(_BALANCES, {"user_id": user_id})).all()
        return {str(currency): int(balance) for currency, balance in rows}

    async def vat_free_balances(self, user_id: int) -> dict[str, int]:
        rows = (await self.conn.execute(_VAT_FREE, {"user_id": user_id})).all()
        return {str(currency): int(vat_free) for currency, vat_free in rows}

    async def balance_parts(self, user_id: int) -> dict[str, CreditParts]:
        rows = (await self.conn.execute(_PARTS, {"user_id": user_id})).all()
        return {
            str(currency): CreditParts(int(balance), int(vat_free))
            for currency, balance, vat_free in rows
        }

    async def list_page(
        self, user_id: int, limit: int, offset: int, *, currency: str | None = None
    ) -> Page[CreditEntry]:
        where = _led.user_id == user_id
        if currency is not None:
            where = where & (_led.currency == currency)
        return await self._page(self.mapper, where, [_led.id.desc()], limit, offset)

    async def list_by_reference(self, reference: str) -> list[CreditEntry]:
        query = select(*self.mapper.columns).where(_led.reference == reference).order_by(_led.id)
        return await self._all(self.mapper, query)

    async def list_unreleased_spent(self, now: datetime, limit: int) -> list[CreditEntry]:
        pay = t.subscription_payment.c
        rel = t.user_credit_ledger.alias("released")
        released = (
            select(rel.c.id)
            .where(
                rel.c.user_id == _led.user_id,
                rel.c.currency == _led.currency,
                rel.c.reference == _led.reference,
                rel.c.reason == CreditReason.RELEASED,
            )
            .exists()
        )
        query = (
            select(*self.mapper.columns)
            .join(t.subscription_payment, pay.id == _led.payment_id)
            .where(
                _led.reason == CreditReason.SPENT,
                pay.is_paid == False,  # noqa: E712
                pay.expires <= now,
                ~released,
            )
            .order_by(_led.id)
            .limit(limit)
        )
        return await self._all(self.mapper, query)
