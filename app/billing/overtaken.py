"""A payment that overtook its VM's deletion (D24): the VM is placed as completion places a
deleted one, or, with no place for it, the payment becomes account credit and buys no time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from app.billing.credit_overpayment import Credited, credit_unrestorable
from app.billing.invoicing import lock_for_notes
from app.billing.payment_completed import (
    Reactions,
    publish,
    tell_admins_of_credit,
    tell_user_of_unrestorable,
)
from app.billing.restorable import Placing, in_locked_region, placing
from app.billing.unrestorable import unrestorable, with_credit
from domain.events import PaymentCompleted
from domain.lifecycle import subscription_changed
from domain.model import Subscription, SubscriptionPayment, Vm
from ports.queue import WorkQueue
from ports.storage import UnitOfWork


async def placing_deleted(uow: UnitOfWork, vm: Vm, now: datetime, region: int | None) -> Placing:
    """Where a deleted VM may come back, judged as completion judges it (`placing`): its
    own host if it has room, else another host of its region, else nowhere and why. Under
    the region's lock: `region` another than its host's raises `RegionMoved`, so the
    caller's transaction starts again with that lock taken first (`under_region_lock`)."""
    await in_locked_region(uow, vm, region)
    return await placing(uow, vm, now, deleted=True, region=region)


async def credit_overtaken(
    uow: UnitOfWork,
    sub: Subscription,
    late: Sequence[SubscriptionPayment],
    why: str,
    now: datetime,
) -> tuple[Subscription, tuple[PaymentCompleted, ...]]:
    """The paid Purchases/Renewals `late` that overtook the deletion of a VM that cannot be
    placed again (`why`) handled as completion handles a payment for such a VM: its value
    becomes account credit, once (`credit_unrestorable`, keyed by the payment), and the row
    says it bought no time (`time_value` 0, credit mode unrestorable). The subscription
    saved and returned without the time they bought: each was booked while the VM was
    live and extended it by its recorded `time_value` from `max(expiry, paid_at)`, so the
    expiry goes back by their sum, to where the first of them found it (or to when it was
    paid, if the subscription had lapsed: no time is left either way). Nothing else moved
    the expiry meanwhile (every change of it takes the subscription's lock, held here), so
    this undoes exactly what they bought. A subscription left with no paid time is
    switched off, as the deletion leaves it. A payment with no recorded time (None, rows
    older than completion's `time_value` rule) takes nothing back. Returns the subscription
    as saved and one event per credited payment, for `tell_overtaken_credited`.

    Each one's invoice was issued at its booking, with its service line and supply period,
    and stays so (invoices are immutable): once its value is credit, the credit notes on
    it leave that service out (`domain.credit_note.creditable_parts`, `credited`), or the
    money would go back twice, as a note and as spendable credit. So its invoice is locked
    first, as every issuer of a note locks it (`lock_for_notes`, after the subscription's
    lock here as in a refund by hand), and one that a note has taken something back from
    already (issued while the VM was being deleted) is credited nothing: its value is
    credited whole or not at all, and the admins are told why (`_noted`)."""
    taken = 0
    credited: list[tuple[SubscriptionPayment, Credited, str]] = []
    for payment in late:
        noted = await _noted(uow, payment)
        reason = why if noted is None else f"{why}; {noted}"
        booked = (
            Credited(0, "")
            if noted
            # its invoice was issued as the service, declaring the VAT credit paid
            else await credit_unrestorable(uow, payment, sub.currency, why, invoice_declared=True)
        )
        taken += payment.time_value or 0
        credited.append((payment, booked, reason))
    after = sub
    if sub.expires is not None and taken:
        after = attrs.evolve(sub, expires=sub.expires - timedelta(seconds=taken))
    if after.is_active and (after.expires is None or after.expires <= now):
        after = attrs.evolve(after, is_active=False)
    if after != sub:
        await uow.subscriptions.update(subscription_changed(sub, after, now))
    events = []
    for payment, booked, reason in credited:
        credit = unrestorable(now, reason, booked.on_balance, given_back=booked.given_back)
        paid = with_credit(payment, credit)
        await uow.payments.update(paid)
        events.append(PaymentCompleted(payment=paid, subscription=after, credit=credit))
    return after, tuple(events)


async def _noted(uow: UnitOfWork, payment: SubscriptionPayment) -> str | None:
    """The payment's invoice locked (`lock_for_notes`); why its value cannot become credit
    when credit notes, or a refund to credit, already took part of that invoice back, else
    None (no invoice, as for a payment booked before invoices were issued, counts as no
    note)."""
    found = await uow.invoices.get_by_payment(payment.id)
    target = None if found is None else await lock_for_notes(uow, found.id)
    if target is None or not (target.issued or target.refunded):
        return None
    if not target.issued:
        return (
            f"a refund to credit gave back {target.refunded} of its invoice "
            f"{target.invoice.number} already"
        )
    numbers = ", ".join(note.number for note in target.issued)
    return f"credit notes {numbers} took back part of its invoice {target.invoice.number}"


async def tell_overtaken_credited(queue: WorkQueue, events: Sequence[PaymentCompleted]) -> None:
    """After the commit: each payer and the admins told as completion tells them of a payment
    booked as credit (`tell_user_of_unrestorable`, `tell_admins_of_credit`)."""
    tellers = [tell_admins_of_credit(queue), tell_user_of_unrestorable(queue)]
    for event in events:
        await publish(event, tellers, Reactions())
