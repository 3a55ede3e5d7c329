"""Listens to the Lightning node's settlements and completes the matching payments (§7.4).

The node numbers its settlements (the settle index); the last one handled is kept in
storage (the `lightning-settle-index` worker cursor), and each stream starts by replaying
every settlement after it, so an outage of any length loses nothing. Only when there is no
usable cursor yet (first start) does `reconcile` look up recent unpaid Lightning payments,
however many were paid before.

One settlement never stops the others (`app.settlement_retries` judges each failure): when
completing it is refused for good (a rule no retry changes, `refused_for_good`) it is
recorded for the operator (`app.settlement_problems`) and the intake goes on; a passing
failure (storage, node, network, no exchange rate) stops the intake before the cursor moves,
and the same settlement is tried again later, however long the outage lasts; a conflict or an
unexpected error (a bug, a broken row) stops it too, but only `MAX_STRIKES` times in a row:
then it is recorded like a refusal, so it cannot stall every later payment.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import attrs

from app.billing.completion import complete_payment
from app.billing.errors import PaymentNotFound
from app.billing.paid_after_admin import settled_after_admin
from app.billing.rails import PaymentRails
from app.settlement_problems import record_problem
from app.settlement_retries import Strikes, refused_for_good
from domain.enums import PaymentMethod
from ports.clock import Clock
from ports.lightning import LightningNode, LightningUnavailable, SettledInvoice
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
    """The newest paid Lightning payment the node invoiced: the node replays every
    settlement after it.

    After a restart this resumes where the previous process stopped; settlements that were
    already applied are harmless because completion is exactly-once (D9). A newer paid
    payment the node never saw is passed over (the reference took the newest paid payment
    of any kind): a quote paid from account credit alone, which keeps the Lightning method,
    or a card payment. Its lookup at the node finds nothing, so the stream would start at 0,
    from which LND replays nothing, and an invoice settled while no listener ran, older than
    the reconciliation's window, would never be completed.
    """
    async with uow_factory() as uow:
        last = await uow.payments.last_paid_invoiced(PaymentMethod.LIGHTNING)
    return None if last is None else last.id


async def reconcile(
    node: LightningNode,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
    window: timedelta = RECONCILE_WINDOW,
    limit: int = RECONCILE_LIMIT,
    strikes: Strikes | None = None,
) -> int:
    """Complete unpaid Lightning payments of the last `window` that the node has settled.

    Used when the stream cannot replay (no settle-index cursor yet: first start): an invoice
    settled while no listener ran would otherwise stay unpaid. Each candidate is looked up
    on the node; completion is exactly-once (D9), so one the stream also reports is not
    booked twice. One whose completion is refused for good is recorded for the operator and
    the others go on; a node or storage error ends the reconciliation early (logged).
    Returns how many payments it completed.
    """
    counted = Strikes() if strikes is None else strikes
    found = await _reconcile(node, uow_factory, clock, rails, queue, window, limit, counted)
    return found.completed


@attrs.frozen
class Reconciled:
    """What a reconciliation did: payments completed, the highest settle index among the
    settlements it handled (0: none), and whether it looked at every candidate (a node or
    storage error stopped it early: settlements older than `highest` may be unchecked)."""

    completed: int = 0
    highest: int = 0
    checked_all: bool = False


async def _reconcile(
    node: LightningNode,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
    window: timedelta,
    limit: int,
    strikes: Strikes,
) -> Reconciled:
    """`reconcile`, also saying the highest settle index it handled and whether it checked
    every candidate."""
    since = clock.now() - window
    async with uow_factory() as uow:
        unpaid = await uow.payments.list_unpaid_by_method(PaymentMethod.LIGHTNING, since, limit)
    if len(unpaid) == limit:
        log.warning("reconciling only the newest %d unpaid Lightning payments", limit)
    completed = highest = 0
    for checked, payment in enumerate(unpaid):
        try:
            settled = await node.lookup_settlement(payment.id)
            if settled is None:
                continue
            done = await _complete(
                uow_factory, clock, rails, queue, settled, "reconciliation", strikes
            )
        except Exception as exc:  # a refusal for good was recorded inside: this one passes
            log.warning(
                "settlement reconciliation stopped after %d of %d payments: %s",
                checked,
                len(unpaid),
                exc,
            )
            return Reconciled(completed, highest, checked_all=False)
        highest = max(highest, settled.settle_index)
        completed += done
    if unpaid:
        log.info(
            "settlement reconciliation: %d of %d unpaid Lightning payments completed",
            completed,
            len(unpaid),
        )
    return Reconciled(completed, highest, checked_all=True)


async def _complete(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
    settled: SettledInvoice,
    by: str,
    strikes: Strikes,
) -> bool:
    """Complete the payment of one settlement (exactly once, D9) with the amount received;
    True when this call booked it.

    An invoice this service did not issue, or a completion refused for good (recorded for
    the operator by `record_problem`), is passed over (False). A passing failure
    propagates: the caller stops before its cursor moves past this settlement. So does a
    conflict or an unexpected error, counted in `strikes`; the `strikes.limit`-th in a row
    is recorded (its traceback logged) and the settlement passed over.
    """
    hex_id = settled.payment_hash.hex()
    try:
        report = await complete_payment(
            uow_factory,
            clock,
            rails,
            queue,
            payment_id=settled.payment_hash,
            received_msat=settled.amount_paid_msat,
        )
        if not report.completed:  # paid already: by this settlement, or by an admin
            await settled_after_admin(uow_factory, clock, queue, settled)
    except PaymentNotFound:
        # D14 / §13 item 2: an invoice this service did not issue changes nothing
        log.error("settled invoice %s matches no payment", hex_id)
        strikes.clear(settled.payment_hash)
        return False
    except Exception as err:
        give_up, tries = strikes.judge(settled.payment_hash, err)
        if not give_up:
            if tries:
                log.warning(
                    "completing settled payment %s failed (%d of %d tries before it is "
                    "recorded): %s: %s",
                    hex_id,
                    tries,
                    strikes.limit,
                    type(err).__name__,
                    err,
                )
            raise
        if not refused_for_good(err):
            log.error("completing settled payment %s failed for good", hex_id, exc_info=err)
        await record_problem(uow_factory, clock, queue, settled, err, tries)
        strikes.clear(settled.payment_hash)
        return False
    strikes.clear(settled.payment_hash)
    if report.completed:
        log.info("payment %s completed by %s", hex_id, by)
    for problem in report.problems:
        log.warning("payment %s follow-up problem: %s", hex_id, problem)
    return report.completed


async def _seed_index(node: LightningNode, uow_factory: UnitOfWorkFactory) -> int:
    """A first cursor: the settle index of the newest paid Lightning payment (0 if none)."""
    after = await replay_point(uow_factory)
    if after is None:
        return 0
    settled = await node.lookup_settlement(after)
    return 0 if settled is None else settled.settle_index


async def start_index(uow_factory: UnitOfWorkFactory) -> int | None:
    """The persisted cursor: the settle index the stream replays after; None on a first
    start (no cursor stored yet)."""
    async with uow_factory() as uow:
        return await uow.worker_cursors.get(SETTLE_CURSOR)


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
    strikes: Strikes | None = None,
) -> int:
    """Replay every settlement after the stored cursor, then consume live ones until the
    stream ends; returns how many payments the stream completed.

    Each settlement is completed (exactly once, D9) before the cursor moves past it, so a
    crash or a database error in between replays it on the next start, harmlessly; an
    invoice this service did not issue, or one whose completion is refused for good
    (recorded for the operator), is passed over. Without a cursor (or at 0, from which LND
    replays nothing) `reconcile` first looks up the recent unpaid payments, and the stream
    then replays after the later of the newest paid payment's settlement and the highest one
    the reconciliation handled (stored as the cursor). A reconciliation that could not check
    every candidate stores no cursor, nor does the stream after it, so the next start
    reconciles again instead of skipping a settlement nobody checked. `strikes`: the failures
    in a row of each settlement so far (`Strikes`; the caller keeps it across restarts of
    the stream, fresh when None).
    """
    strikes = Strikes() if strikes is None else strikes
    completed = 0
    stored = await start_index(uow_factory)
    start = stored or 0
    keep_cursor = True
    if not stored:
        # a first start (no cursor) or one after a start that could not check everything:
        # the newest paid payment's settlement is where the stream picks up, and the recent
        # unpaid payments before it are looked up on the node (paid while no listener ran,
        # or by a wallet while an older release ran: the stream would not replay them)
        seed = await _seed_index(node, uow_factory)  # a node error: the listener starts again
        try:
            found = await _reconcile(
                node, uow_factory, clock, rails, queue, reconcile_window, RECONCILE_LIMIT, strikes
            )
        except Exception:  # reconciliation is best effort: never keep the listener from listening
            log.exception("settlement reconciliation failed")
            found = Reconciled()
        start = max(seed, found.highest)
        if not found.checked_all:
            keep_cursor = False
            log.warning(
                "settlement reconciliation incomplete: no cursor is stored until a start "
                "reconciles every recent unpaid Lightning payment"
            )
        elif start or stored is None:
            await _handled(uow_factory, start)
            log.info("settlement cursor starts at settle index %d", start)
    async for settled in node.settlements_after(start):
        completed += await _complete(
            uow_factory, clock, rails, queue, settled, "settlement", strikes
        )
        if keep_cursor:
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
    """Listen until `stop` is set, reconnecting after `retry_delay` when the stream fails.

    The failures in a row of each settlement are counted across reconnections (`Strikes`),
    in this process only: a restart counts from zero again."""
    strikes = Strikes()
    while not stop.is_set():
        listener = asyncio.ensure_future(
            listen_once(node, uow_factory, clock, rails, queue, strikes=strikes)
        )
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
