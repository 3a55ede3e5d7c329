"""Account credit use cases: book an entry once under the balance lock, read balances and ledger."""

from __future__ import annotations

import attrs

from app.billing.errors import IdempotencyKeyReused, UserNotFound
from domain.account_credit import (
    CreditEntry,
    CreditParts,
    CreditReason,
    checked_entry,
    debit_split,
)
from domain.errors import InvalidInput
from domain.money import Currency, Money
from ports.clock import Clock
from ports.storage import CreditKey, Page, UnitOfWork, UnitOfWorkFactory

#: the most ledger entries one page returns.
MAX_PAGE = 100


@attrs.frozen(kw_only=True)
class Booked:
    """The entry written (or the one an earlier identical request wrote) and the balance now,
    with its VAT-free part (`vat_free`, `CreditParts.vat_free`)."""

    entry: CreditEntry
    balance: int
    vat_free: int
    replayed: bool = False


async def book_in(uow: UnitOfWork, entry: CreditEntry) -> Booked:
    """Book `entry` inside the caller's transaction: lock the balance row, append once.

    An entry with the same user, currency, reason and reference already booked is not
    booked again: the earlier one is returned (`replayed`), so replays change nothing.
    `InsufficientCredit` (422) when it would take the balance below zero; nothing written.
    """
    stored = await uow.credit_ledger.book(entry)  # locks the balance row first
    replayed = stored is None
    if stored is None:
        key = CreditKey.of(entry)
        assert key is not None  # only a referenced entry can be a duplicate
        # `latest`: on MariaDB the transaction's snapshot may be older than the concurrent
        # booking that won (a read before the balance lock fixed it), so read what is committed
        stored = await uow.credit_ledger.find(key, latest=True)
        if stored is None:  # impossible: book found it (or its duplicate key) under the lock
            raise LookupError("credit entry vanished")
    # the balance as it is now, under the lock this transaction holds (a plain read could
    # answer from a MariaDB snapshot older than the booking that won)
    parts = await uow.credit_ledger.lock_parts(entry.user_id, entry.currency)
    return Booked(entry=stored, balance=parts.total, vat_free=parts.vat_free, replayed=replayed)


async def adjust_credit(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    admin_id: int,
    user_id: int,
    currency: str,
    amount: int,
    note: str,
    reference: str | None = None,
) -> Booked:
    """An admin's adjustment of a user's balance, either sign, with its reason in `note`.

    `reference` (e.g. an idempotency key or a ticket number) makes a repeated request a
    no-op; without one each request books a new entry. A debit below zero is refused (422).
    A replay must repeat the request exactly: a reference already booked for another
    amount (or sign) or with another note is a key reused with another body, refused (409,
    as D11 answers an Idempotency-Key reuse), nothing booked. (Answering another note as a
    replay would tell the admin the adjustment was booked with the reason they gave now,
    while the ledger keeps the first one's.) The reference names one adjustment whatever its
    currency: one booked with it in another currency is refused too (409), though the
    ledger's unique key (user, currency, reason, reference) would take both.

    The user's row is locked first (then the balance's, as a completion booking credit
    takes them), so two adjustments of one user with one reference in two currencies run
    one after the other and the second finds the first (`_refuse_other_currency`).

    A debit takes ordinary credit first and VAT-free credit only for the rest
    (`debit_split`, judged under the balance lock); a credit is ordinary credit.
    """
    if not note.strip():
        raise InvalidInput("An adjustment needs a reason (note)")
    async with uow_factory() as uow:
        if await uow.users.get_for_update(user_id) is None:
            raise UserNotFound("User not found")
        code = Currency.parse(currency).value
        parts = await uow.credit_ledger.lock_parts(user_id, code)
        entry = checked_entry(
            user_id=user_id,
            currency=currency,
            amount=amount,
            reason=CreditReason.ADMIN_ADJUSTMENT,
            reference=reference,
            note=note.strip(),
            created=clock.now(),
            admin_id=admin_id,
            vat_free=debit_split(parts, -amount) if isinstance(amount, int) and amount < 0 else 0,
        )
        await _refuse_other_currency(uow, entry)
        booked = await book_in(uow, entry)
        if booked.replayed and booked.entry.amount != amount:
            raise IdempotencyKeyReused(
                f"Reference {reference!r} was already used for an adjustment of "
                f"{Money(Currency.parse(currency), booked.entry.amount)}; use another "
                "reference for another amount"
            )
        if booked.replayed and booked.entry.note != entry.note:
            raise IdempotencyKeyReused(
                f"Reference {reference!r} was already used for an adjustment with another "
                "note; use another reference for another adjustment"
            )
        await uow.commit()
    return booked


async def _refuse_other_currency(uow: UnitOfWork, entry: CreditEntry) -> None:
    """`IdempotencyKeyReused` (409) when the user has an adjustment booked with `entry`'s
    reference in another currency (read under the user's lock: as committed)."""
    if entry.reference is None:
        return
    for earlier in await uow.credit_ledger.list_by_reference(entry.reference):
        if (
            earlier.user_id == entry.user_id
            and earlier.reason is CreditReason.ADMIN_ADJUSTMENT
            and earlier.currency != entry.currency
        ):
            raise IdempotencyKeyReused(
                f"Reference {entry.reference!r} was already used for an adjustment of "
                f"{Money(Currency.parse(earlier.currency), earlier.amount)}; use another "
                "reference for another adjustment"
            )


async def balances_of(uow_factory: UnitOfWorkFactory, user_id: int) -> dict[str, int]:
    """The user's balance per currency code (currencies never used are absent)."""
    async with uow_factory() as uow:
        return await uow.credit_ledger.balances(user_id)


async def balance_parts_of(uow_factory: UnitOfWorkFactory, user_id: int) -> dict[str, CreditParts]:
    """The user's balance per currency code with its VAT-free part (currencies never used
    are absent), in one read: what the account and admin views show."""
    async with uow_factory() as uow:
        return await uow.credit_ledger.balance_parts(user_id)


async def ledger_page(
    uow_factory: UnitOfWorkFactory,
    user_id: int,
    *,
    limit: int,
    offset: int,
    currency: str | None = None,
) -> Page[CreditEntry]:
    """One page of the user's ledger, newest first."""
    if not 0 < limit <= MAX_PAGE or offset < 0:
        raise InvalidInput(f"limit must be 1..{MAX_PAGE} and offset >= 0")
    async with uow_factory() as uow:
        return await uow.credit_ledger.list_page(user_id, limit, offset, currency=currency)
