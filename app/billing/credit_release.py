"""Credit of quotes that ended unpaid comes back once; paid after all, it is spent again."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import attrs

from app.billing.credit_balance import book_in
from app.billing.errors import PaymentProviderUnavailable
from app.billing.rails import PaymentRails
from domain.account_credit import CreditReason, checked_entry, credit_applied, vat_free_applied
from domain.credit import payment_meta
from domain.enums import PaymentMethod
from domain.model import SubscriptionPayment
from ports.clock import Clock
from ports.storage import CreditKey, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

#: How long after its quote lapsed the account credit it applied is still held. A quote paid
#: in its last seconds is settled at the Lightning node before its invoice expires, but the
#: intake books it when the node's stream reports it (seconds later, longer while the stream
#: reconnects), and a card webhook may come minutes late (the lapsed-order sweep gives it the
#: same five minutes, `app.billing.lapsed_orders.GRACE`). Released meanwhile, the credit could
#: be spent on something else before the payment is booked, which then cannot take it again
#: (`respend_released`) and buys less than it was paid for.
RELEASE_MARGIN = timedelta(minutes=5)


async def release_expired_credit(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    limit: int = 200,
    rails: PaymentRails | None = None,
) -> int:
    """Give back the credit of quotes that ended unpaid (expired by time or by a D23/D24
    sweep) at least `RELEASE_MARGIN` ago; how many were released. Each release is booked
    once (reference: the payment id), so running it again, or on two workers, releases
    nothing twice. With `rails` and a Lightning node configured, a Lightning quote's credit
    is released only once the node says its invoice is not settled: one settled there and
    not booked yet (the intake down longer than the margin) keeps its credit for its
    completion, and while the node cannot be asked its quotes wait for the next pass.
    The worker runs it after each CheckSubscriptions. A payment settled after its release
    spends the credit again at completion (`respend_released`).
    """
    now = clock.now()
    lapsed_by = now - RELEASE_MARGIN
    released = 0
    node_down = False
    async with uow_factory() as uow:
        spent = await uow.credit_ledger.list_unreleased_spent(lapsed_by, limit)
    for entry in spent:
        payment_id = entry.payment_id
        if payment_id is None or entry.reference is None:
            continue
        async with uow_factory() as uow:  # a look of its own: which subscription to lock
            payment = await uow.payments.get(payment_id)
        if payment is None or payment.is_paid:
            continue
        held, node_down = await _held_at_node(rails, payment, node_down)
        if held:
            continue
        async with uow_factory() as uow:
            # lock order: subscription, then balance (as completion and quotes take them);
            # the lock is the transaction's first statement: on MariaDB the first plain read
            # fixes the snapshot, and a payment booked after it would still look unpaid
            await uow.subscriptions.get_for_update(payment.subscription_id)
            payment = await uow.payments.get(payment_id)
            if payment is None or payment.is_paid or payment.expires > lapsed_by:
                continue
            given, note = (-entry.amount, entry.currency), "the quote expired unpaid"
            replayed = await book_released(
                uow, payment, entry.reference, given, note, now, vat_free=-entry.vat_free
            )
            await uow.commit()
            released += 0 if replayed else 1
    return released


async def _held_at_node(
    rails: PaymentRails | None, payment: SubscriptionPayment, node_down: bool
) -> tuple[bool, bool]:
    """Whether `payment`'s credit is held for the Lightning node's sake, and whether the node
    is down (asked once a pass). Held: its invoice is settled at the node but not booked
    here yet (its completion spends the credit), or the node cannot be asked now. Not held:
    another method, a quote the credit covered whole (no invoice), no node configured here,
    or the node has no settlement of it (an invoice past its expiry takes no more payment,
    so none can follow)."""
    lightning = payment.payment_method is PaymentMethod.LIGHTNING and payment.total > 0
    if rails is None or not lightning or not rails.asks_lightning_node:
        return False, node_down
    if node_down:
        return True, node_down
    try:
        settled = await rails.lightning_settlement(payment.id)
    except PaymentProviderUnavailable as err:
        log.warning("credit of lapsed Lightning quotes held: the node cannot be asked (%s)", err)
        return True, True
    if settled is not None:
        log.warning(
            "payment %s: settled at the Lightning node but not booked yet; its credit is "
            "held for its completion",
            payment.id.hex(),
        )
    return settled is not None, node_down


async def book_released(
    uow: UnitOfWork,
    payment: SubscriptionPayment,
    reference: str,
    given: tuple[int, str],
    note: str,
    created: datetime,
    payment_id: bytes | None = None,
    *,
    vat_free: int = 0,
) -> bool:
    """Book the RELEASED entry that gives `payment`'s spent credit back (`given`: amount and
    currency; `vat_free` of it VAT-free, as it was spent) under `reference` (a quote's: its
    SPENT entry's); whether it was booked before."""
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
            vat_free=vat_free,
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
        vat_free = vat_free_applied(payment_meta(found)).amount
        await book_released(uow, found, found.id.hex(), applied, note, now, vat_free=vat_free)
        await uow.commit()


@attrs.frozen
class Respent:
    """What taking a late-paid quote's released credit again left unpaid (`unpaid`, in the
    balance's units, `unpaid_vat_free` of them VAT-free; 0: all of it, or none was
    released) and the operator's line about it."""

    unpaid: int = 0
    problem: str | None = None
    unpaid_vat_free: int = 0


async def respend_released(uow: UnitOfWork, payment: SubscriptionPayment) -> Respent:
    """In the completion transaction, before the payment is valued: a payment whose credit
    was released (it expired) and that is paid after all spends it again, once, so the time
    it buys is not had for free. Each kind of credit it applied (ordinary, VAT-free) is
    taken from that kind, as far as the balance holds it (never below zero); the rest is
    `unpaid`, which the booking does not count as paid (`credit_payment`'s
    `unpaid_credit`)."""
    applied = credit_applied(payment_meta(payment))
    if applied is None:
        return Respent()
    amount, currency = applied
    vat_free = min(vat_free_applied(payment_meta(payment)).amount, amount)
    ref = payment.id.hex()
    released = CreditKey(payment.user_id, currency, CreditReason.RELEASED, ref)
    if await uow.credit_ledger.find(released) is None:
        return Respent()
    parts = await uow.credit_ledger.lock_parts(payment.user_id, currency)
    taken_vat_free = min(vat_free, max(parts.vat_free, 0))
    taken = min(amount - vat_free, max(parts.ordinary, 0)) + taken_vat_free
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
                vat_free=-taken_vat_free,
            ),
        )
    if taken < amount:
        problem = (
            f"payment {ref} was paid after its credit was released; {amount - taken} "
            f"{currency} of credit could not be taken back and is not counted as paid"
        )
        return Respent(
            unpaid=amount - taken, problem=problem, unpaid_vat_free=vat_free - taken_vat_free
        )
    return Respent()
