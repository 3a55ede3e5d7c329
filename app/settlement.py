"""Listens to the Lightning node's settlements and completes the matching payments (§7.4).

The node numbers its settlements (the settle index); the last one handled is kept in
storage (the `lightning-settle-index` worker cursor), and each stream starts by replaying
every settlement after it, so an outage of any length loses nothing. Only when there is no
usable cursor yet (first start) does `reconcile` look up recent unpaid Lightning payments.
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
#: the worker cursor holding the settle index of the last settlement handled.
SETTLE_CURSOR = "lightning-settle-index"


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

    Used when the stream cannot replay (no settle-index cursor yet: first start): an invoice
    settled while no listener ran would otherwise stay unpaid. Each candidate is looked up
    on the node; completion is exactly-once (D9), so one the stream also reports is not
    booked twice. A node error ends the reconciliation early (logged); returns how many
    payments it completed.
    """
    completed, _ = await _reconcile(node, uow_factory, clock, rails, queue, window, limit)
    return completed


async def _reconcile(
    node: LightningNode,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
    window: timedelta,
    limit: int,
) -> tuple[int, int]:
    """`reconcile`, also returning the highest settle index it found settled (0: none)."""
    since = clock.now() - window
    async with uow_factory() as uow:
        unpaid = await uow.payments.list_unpaid_by_method(PaymentMethod.LIGHTNING, since, limit)
    if len(unpaid) == limit:
        log.warning("reconciling only the newest %d unpaid Lightning payments", limit)
    completed = highest = 0
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
        highest = max(highest, settled.settle_index)
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
    return completed, highest


async def _seed_index(node: LightningNode, uow_factory: UnitOfWorkFactory) -> int:
    """A first cursor: the settle index of the newest paid Lightning payment (0 if none)."""
    after = await replay_point(uow_factory)
    if after is None:
        return 0
    settled = await node.lookup_settlement(after)
    return 0 if settled is None else settled.settle_index


async def start_index(node: LightningNode, uow_factory: UnitOfWorkFactory) -> int:
    """The settle index the stream replays after: the persisted cursor, else a seed (stored)."""
    async with uow_factory() as uow:
        stored = await uow.worker_cursors.get(SETTLE_CURSOR)
    if stored is not None:
        return stored
    seed = await _seed_index(node, uow_factory)
    async with uow_factory() as uow:
        await uow.worker_cursors.advance(SETTLE_CURSOR, seed)
        await uow.commit()
    log.info("settlement cursor starts at settle index %d", seed)
    return seed


async def _handled(uow_factory: UnitOfWorkFactory, settle_index: int) -> None:
    async with uow_factory() as uow:
        await uow.worker_cursors.advance(SETTLE_CURSOR, settle_index)
        await uow.commit()


async def listen_once(
    node: LightningNode,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
    reconcile_window: timedelta = RECONCILE_WINDOW,
) -> int:
    """Replay every settlement after the stored cursor, then consume live ones until the
    stream ends; returns how many payments the stream completed.

    Each settlement is completed (exactly once, D9) before the cursor moves past it, so a
    crash or a database error in between replays it on the next start, harmlessly; an
    invoice this service did not issue is passed over. With cursor 0 the node may replay
    nothing (LND), so `reconcile` first looks up the recent unpaid payments, and the
    stream then replays after the highest settlement it found (stored as the cursor).
    """
    completed = 0
    start = await start_index(node, uow_factory)
    if start == 0:
        try:
            _, found = await _reconcile(
                node, uow_factory, clock, rails, queue, reconcile_window, RECONCILE_LIMIT
            )
        except Exception:  # reconciliation is best effort: never keep the listener from listening
            log.exception("settlement reconciliation failed")
        else:
            if found:
                await _handled(uow_factory, found)
                start = found
    async for settled in node.settlements_after(start):
        try:
            report = await complete_payment(
                uow_factory, clock, rails, queue, payment_id=settled.payment_hash
            )
        except PaymentNotFound:
            # D14 / §13 item 2: an invoice this service did not issue changes nothing
            log.error("settled invoice %s matches no payment", settled.payment_hash.hex())
        else:
            if report.completed:
                completed += 1
                log.info("payment %s completed by settlement", settled.payment_hash.hex())
            for problem in report.problems:
                log.warning("payment %s follow-up problem: %s", settled.payment_hash.hex(), problem)
        await _handled(uow_factory, settled.settle_index)
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
