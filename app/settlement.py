"""Listens to the Lightning node's settlements and completes the matching payments (§7.4)."""

from __future__ import annotations

import asyncio
import logging

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


async def listen_once(
    node: LightningNode,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
) -> int:
    """Consume the settlement stream until it ends; returns how many payments it completed."""
    completed = 0
    after = await replay_point(uow_factory)
    async for settled in node.settled_invoices(after):
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
