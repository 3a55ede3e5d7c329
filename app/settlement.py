"""Listens to the Lightning node's settlements and completes the matching payments (§7.4).

Before each stream, `reconcile` completes recent unpaid Lightning payments the node settled
while nobody listened (the stream alone replays nothing without a known paid payment).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from app.billing.completion import complete_payment
from app.billing.errors import PaymentNotFound
from app.billing.rails import PaymentRails
from domain.enums import PaymentMethod
from ports.clock import Clock
from ports.lightning import LightningNode, LightningUnavailable
from ports.queue import WorkQueue
from ports.storage import UnitOfWorkFactory

log = logging.getLogger("lnvps.settlement")

#: how long to wait before listening again after the node dropped the stream (the reference: 10 s).
RETRY_DELAY_SECONDS = 10.0
#: how far back `reconcile` looks for unpaid Lightning payments the node may have settled.
RECONCILE_WINDOW = timedelta(days=1)
#: at most this many payments are looked up per reconciliation (newest first).
RECONCILE_LIMIT = 1000


async def replay_point(uow_factory: UnitOfWorkFactory) -> bytes | None:
    """The newest paid Lightning payment: the node replays every settlement after it.

    After a restart this resumes where the previous process stopped; settlements that were
    already applied are harmless because completion is exactly-once (D9).
    """
    async with uow_factory() as uow:
        last = await uow.payments.last_paid()
    if last is None or last.payment_method is not PaymentMethod.LIGHTNING:
        return None
    return last.id


async def reconcile(
    node: LightningNode,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
    window: timedelta = RECONCILE_WINDOW,
    limit: int = RECONCILE_LIMIT,
) -> int:
    """Complete unpaid Lightning payments of the last `window` that the node has settled.

    The stream replays nothing when there is no (known) paid Lightning payment to replay
    after, so an invoice settled while no listener ran would otherwise stay unpaid. Each
    candidate is looked up on the node; completion is exactly-once (D9), so one the stream
    also reports is not booked twice. A node error ends the reconciliation early (logged);
    returns how many payments it completed.
    """
    since = clock.now() - window
    async with uow_factory() as uow:
        unpaid = await uow.payments.list_unpaid_by_method(PaymentMethod.LIGHTNING, since, limit)
    if len(unpaid) == limit:
        log.warning("reconciling only the newest %d unpaid Lightning payments", limit)
    completed = 0
    for checked, payment in enumerate(unpaid):
        try:
            settled = await node.lookup_settlement(payment.id)
        except (LightningUnavailable, OSError) as exc:
            log.warning(
                "settlement reconciliation stopped after %d of %d payments: %s",
                checked,
                len(unpaid),
                exc,
            )
            break
        if settled is None:
            continue
        try:
            report = await complete_payment(uow_factory, clock, rails, queue, payment_id=payment.id)
        except PaymentNotFound:  # listed a moment ago; payments are never deleted
            log.error("reconciled payment %s vanished", payment.id.hex())
            continue
        if report.completed:
            completed += 1
            log.info("payment %s completed by reconciliation", payment.id.hex())
        for problem in report.problems:
            log.warning("payment %s follow-up problem: %s", payment.id.hex(), problem)
    if unpaid:
        log.info(
            "settlement reconciliation: %d of %d unpaid Lightning payments completed",
            completed,
            len(unpaid),
        )
    return completed


async def listen_once(
    node: LightningNode,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
    reconcile_window: timedelta = RECONCILE_WINDOW,
) -> int:
    """Reconcile, then consume the settlement stream until it ends.

    Returns how many payments the stream completed (reconciliation logs its own count).
    The stream is asked for before reconciling, so a node that fixes the replay start when
    asked (the dev rail) misses nothing settled during the reconciliation.
    """
    completed = 0
    after = await replay_point(uow_factory)
    stream = node.settled_invoices(after)
    try:
        await reconcile(node, uow_factory, clock, rails, queue, reconcile_window)
    except Exception:  # reconciliation is best effort: never keep the listener from listening
        log.exception("settlement reconciliation failed")
    async for settled in stream:
        try:
            report = await complete_payment(
                uow_factory, clock, rails, queue, payment_id=settled.payment_hash
            )
        except PaymentNotFound:
            # D14 / §13 item 2: an invoice this service did not issue changes nothing
            log.error("settled invoice %s matches no payment", settled.payment_hash.hex())
            continue
        if report.completed:
            completed += 1
            log.info("payment %s completed by settlement", settled.payment_hash.hex())
        for problem in report.problems:
            log.warning("payment %s follow-up problem: %s", settled.payment_hash.hex(), problem)
    return completed


async def run_settlement_listener(
    node: LightningNode,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
    stop: asyncio.Event,
    retry_delay: float = RETRY_DELAY_SECONDS,
) -> None:
    """Listen until `stop` is set, reconnecting after `retry_delay` when the stream fails."""
    while not stop.is_set():
        listener = asyncio.ensure_future(listen_once(node, uow_factory, clock, rails, queue))
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({listener, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if listener not in done:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            break
        stopper.cancel()
        error = listener.exception()
        if error is not None and not isinstance(error, LightningUnavailable | OSError):
            log.exception("settlement listener failed", exc_info=error)
        elif error is not None:
            log.warning("Lightning node unavailable: %s", error)
        try:
            await asyncio.wait_for(stop.wait(), timeout=retry_delay)
        except TimeoutError:
            continue
