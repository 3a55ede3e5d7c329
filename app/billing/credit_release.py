"""Credit of quotes that ended unpaid comes back once; paid after all, it is spent again."""

from __future__ import annotations

from datetime import datetime

import attrs

from app.billing.credit_balance import book_in
from domain.account_credit import CreditReason, checked_entry, credit_applied
from domain.credit import payment_meta
from domain.model import SubscriptionPayment
from ports.clock import Clock
from ports.storage import CreditKey, UnitOfWork, UnitOfWorkFactory


async def release_expired_credit(
    uow_factory: UnitOfWorkFactory, clock: Clock, *, limit: int = 200
) -> int:
    """Give back the credit of quotes that ended unpaid (expired by time or by a D23/D24
    sweep); how many were released. Each release is booked once (reference: the payment id),
    so running it again, or on two workers, releases nothing twice.
    The worker runs it after each CheckSubscriptions. A payment settled after its release
    spends the credit again at completion (`respend_released`).
    """
    now = clock.now()
    released = 0
    async with uow_factory() as uow:
        spent = await uow.credit_ledger.list_unreleased_spent(now, limit)
    for entry in spent:
        payment_id = entry.payment_id
        if payment_id is None or entry.reference is None:
            continue
        async with uow_factory() as uow:  # a look of its own: which subscription to lock
            payment = await uow.payments.get(payment_id)
        if payment is None or payment.is_paid:
            continue
        async with uow_factory() as uow:
            # lock order: subscription, then balance (as completion and quotes take them);
            # the lock is the transaction's first statement: on MariaDB the first plain read
            # fixes the snapshot, and a payment booked after it would still look unpaid
            await uow.subscriptions.get_for_update(payment.subscription_id)
            payment = await uow.payments.get(payment_id)
            if payment is None or payment.is_paid or payment.expires > now:
                continue
            given, note = (-entry.amount, entry.currency), "the quote expired unpaid"
            replayed = await book_released(uow, payment, entry.reference, given, note, now)
            await uow.commit()
            released += 0 if replayed else 1
    return released


async def book_released(
    uow: UnitOfWork,
    payment: SubscriptionPayment,
    reference: str,
    given: tuple[int, str],
    note: str,
    created: datetime,
    payment_id: bytes | None = None,
) -> bool:
    """Book the RELEASED entry that gives `payment`'s spent credit back (`given`: amount and
    currency) under `reference` (a quote's: its SPENT entry's); whether it was booked before."""
    amount, currency = given
    booked = await book_in(
        uow,
        checked_entry(
            user_id=payment.user_id,
            currency=currency,
            amount=amount,
            reason=CreditReason.RELEASED,
            reference=reference,
            note=note,
            created=created,
            payment_id=payment_id,
        ),
    )
    return booked.replayed


async def withdraw_covered(
    uow_factory: UnitOfWorkFactory, payment: SubscriptionPayment, now: datetime, note: str
) -> None:
    """End a quote paid from credit alone that cannot be booked (its upgrade no longer fits,
    or is priced to another expiry or at other prices): expired now, its credit given back
    (`note` says why), once, in one transaction. A payment found paid meanwhile is left as it is."""
    async with uow_factory() as uow:
        await uow.subscriptions.get_for_update(payment.subscription_id)
        found = await uow.payments.get(payment.id)
        applied = None if found is None else credit_applied(payment_meta(found))
        if found is None or found.is_paid or applied is None:
            return
        if found.expires > now:
            await uow.payments.update(attrs.evolve(found, expires=now))
        await book_released(uow, found, found.id.hex(), applied, note, now)
        await uow.commit()


@attrs.frozen
class Respent:
    """What taking a late-paid quote's released credit again left unpaid (`unpaid`, in the
    balance's units; 0: all of it, or none was released) and the operator's line about it."""

    unpaid: int = 0
    problem: str | None = None


async def respend_released(uow: UnitOfWork, payment: SubscriptionPayment) -> Respent:
    """In the completion transaction, before the payment is valued: a payment whose credit
    was released (it expired) and that is paid after all spends it again, once, so the time
    it buys is not had for free. What the balance no longer holds is spent as far as it
    goes (the balance never goes below zero); the rest is `unpaid`, which the booking does
    not count as paid (`credit_payment`'s `unpaid_credit`)."""
    applied = credit_applied(payment_meta(payment))
    if applied is None:
        return Respent()
    amount, currency = applied
    ref = payment.id.hex()
    released = CreditKey(payment.user_id, currency, CreditReason.RELEASED, ref)
    if await uow.credit_ledger.find(released) is None:
        return Respent()
    balance = await uow.credit_ledger.lock(payment.user_id, currency)
    taken = min(amount, balance)
    if taken > 0:
        await book_in(
            uow,
            checked_entry(
                user_id=payment.user_id,
                currency=currency,
                amount=-taken,
                reason=CreditReason.SPENT,
                reference=f"late:{ref}",
                note="a released quote was paid after all",
                created=payment.paid_at or payment.created,
            ),
        )
    if taken < amount:
        problem = (
            f"payment {ref} was paid after its credit was released; {amount - taken} "
            f"{currency} of credit could not be taken back and is not counted as paid"
        )
        return Respent(unpaid=amount - taken, problem=problem)
    return Respent()
