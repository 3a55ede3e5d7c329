"""The never-paid IP-range subscription is cancelled one hour after it was made (as D17)."""

from __future__ import annotations

import logging

from app.worker.context import WorkerDeps
from app.worker.pending import cancel_ended, end_pending
from domain.lifecycle import UNPAID_CLEANUP_AFTER, never_paid_cleanup_due
from ports.storage import NEVER_PAID_CLEANUP

log = logging.getLogger("lnvps.worker.unpaid_subscriptions")

#: never-paid subscriptions looked at per run; a backlog drains over the following runs
BATCH = 100


async def cancel_never_paid(deps: WorkerDeps, subscription_id: int) -> bool:
    """Cancel an IP-range subscription never paid for, one hour after it was made.

    The equivalent of the never-paid VM's deletion (D17): no invoice can be asked for it any
    more (`refuse_lapsed_order`), so nothing but an invoice of its first hour can still pay
    it. Decided under the subscription's row lock, which completion takes too: a payment
    completing at the same moment either lands first (then it is paid and kept) or finds
    it cancelled and sets it up as any first payment does, its IP ranges active again
    (`booked_records`), as a late payment brings a deleted never-paid VM back. Kept while a
    payment is pending (unpaid, unexpired) or once any payment is paid. Done once: the
    `NEVER_PAID_CLEANUP` mark is claimed in the same transaction that ends its IP ranges
    (none are allocated at purchase; an operator may have assigned some) and its pending
    invoices (D24: a race, none was pending above). No notice, as for a never-paid VM.
    """
    now = deps.clock.now()
    async with deps.uow_factory() as uow:
        sub = await uow.subscriptions.get_for_update(subscription_id)
        if sub is None:
            return False
        pending = await uow.payments.list_pending_for_subscription(sub.id, now)
        if not never_paid_cleanup_due(sub, bool(pending), now):
            return False
        if (await uow.payments.paid_tally(sub.id)).paid:
            return False  # paid but booked as credit: not an abandoned order
        if not await uow.lifecycle_marks.claim(sub.id, NEVER_PAID_CLEANUP, sub.created, now):
            return False
        freed = await uow.ip_range_subscriptions.deactivate_for_subscription(sub.id, now)
        ended = await end_pending(uow, sub.id, now)
        await uow.commit()
    await cancel_ended(deps, ended)
    log.info(
        "cancelled subscription %s (%d IP range(s) ended): made %s and never paid",
        sub.id,
        freed,
        sub.created.isoformat(),
    )
    return True


async def cancel_never_paid_subscriptions(deps: WorkerDeps) -> list[int]:
    """One run: the IP-range subscriptions cancelled (`cancel_never_paid`), oldest first.

    One statement finds the candidates (at most `BATCH`); each is decided again under its
    lock. One subscription's failure is logged and the others go on.
    """
    now = deps.clock.now()
    async with deps.uow_factory() as uow:
        due = await uow.subscriptions.list_never_paid_ip_ranges(
            now - UNPAID_CLEANUP_AFTER, now, BATCH
        )
    cancelled: list[int] = []
    for sub in due:
        try:
            if await cancel_never_paid(deps, sub.id):
                cancelled.append(sub.id)
        except Exception:
            log.exception("never-paid cleanup of subscription %s failed", sub.id)
    return cancelled
