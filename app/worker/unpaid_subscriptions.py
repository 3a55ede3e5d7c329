"""The never-paid IP-range subscription is cancelled one hour after it was made (as D17)."""

from __future__ import annotations

import logging

import attrs

from app.worker.context import WorkerDeps
from app.worker.pending import cancel_ended, end_pending
from domain.lifecycle import UNPAID_CLEANUP_AFTER, never_paid_cleanup_due
from ports.storage import NEVER_PAID_CLEANUP, NeverPaidWindow

log = logging.getLogger("lnvps.worker.unpaid_subscriptions")

#: the page of candidates read at once, and how many one run cancels before it stops (at the
#: end of that page); a backlog drains over the following runs
BATCH = 100


async def cancel_never_paid(deps: WorkerDeps, subscription_id: int) -> bool:
    """Cancel an IP-range subscription never paid for, one hour after it was made.

    The equivalent of the never-paid VM's deletion (D17): no invoice can be asked for it any
    more (`refuse_lapsed_order`), so nothing but an invoice of its first hour can still pay
    it. Decided under the subscription's row lock, which completion takes too: a payment
    completing at the same moment either lands first (then it is paid and kept) or finds
    it cancelled and sets it up as any first payment does, given its blocks if still free
    (`ip_allocation`), as a late payment brings a deleted never-paid VM back. Kept while a
    payment is pending (unpaid, unexpired) or once any payment is paid. Done once: the
    `NEVER_PAID_CLEANUP` mark is claimed in the same transaction that ends its IP ranges
    (none are given before payment; an operator may have assigned some) and its pending
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


async def cancel_never_paid_subscriptions(deps: WorkerDeps, batch: int = BATCH) -> list[int]:
    """One run: the IP-range subscriptions cancelled (`cancel_never_paid`), oldest first.

    The candidates are those made within `deps.never_paid_lookback` (`NEVER_PAID_LOOKBACK`),
    so a run reads the orders of that window, not every one ever made. They come a page of
    `batch` at a time, each page one statement, and each is decided again under its lock.
    The run stops after the page in which it cancelled its `batch`-th (the rest next run) or
    on a short page. A candidate not cancelled (a payment or another worker came first, or
    its cancellation failed, logged) is passed over by the keyset cursor, so no row kept at
    the head of the order can hold the ones behind it back:
    each run tries those again and still reaches `batch` others.
    """
    now = deps.clock.now()
    window = NeverPaidWindow(now - deps.never_paid_lookback, now - UNPAID_CLEANUP_AFTER, now)
    cancelled: list[int] = []
    while True:
        async with deps.uow_factory() as uow:
            page = await uow.subscriptions.list_never_paid_ip_ranges(window, batch)
        for sub in page:
            try:
                if await cancel_never_paid(deps, sub.id):
                    cancelled.append(sub.id)
            except Exception:
                log.exception("never-paid cleanup of subscription %s failed", sub.id)
        if len(page) < batch or len(cancelled) >= batch:
            return cancelled
        window = attrs.evolve(window, after=(page[-1].created, page[-1].id))
