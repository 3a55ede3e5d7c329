"""Keeping a delivery while its job runs, so no other worker claims and runs it again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from ports.queue import Delivery, WorkQueue

log = logging.getLogger("lnvps.worker.keep_alive")

#: keeps per claim idle time: one late or failed keep still leaves the delivery held
KEEPS_PER_CLAIM_IDLE = 2


@contextlib.asynccontextmanager
async def kept(queue: WorkQueue, delivery: Delivery) -> AsyncIterator[None]:
    """Keep `delivery` (`WorkQueue.keep`) every claim idle time / KEEPS_PER_CLAIM_IDLE while
    the body runs; the keeps stop when it ends, before its ack or fail.

    Without it a job running longer than the claim idle time (10 s on Redis: a slow mail
    server, which the SMTP notifier allows 30 s; a stop and resize on a slow host) was
    claimed by another worker and run a second time meanwhile: the same notice mailed
    twice, a paid VM stopped and resized twice. Now only a worker that died (or whose event
    loop stalls past the claim idle time) loses its deliveries. A keep that fails (the
    queue unreachable) is logged and tried again at the next beat; one that finds the
    delivery taken over or gone ends the keeps (the job is run elsewhere too; it is not
    taken back). A queue whose claim idle time is 0 claims everything at once: not kept.
    """
    if queue.claim_idle_ms <= 0:
        yield
        return
    beat = asyncio.create_task(_keep(queue, delivery))
    try:
        yield
    finally:
        beat.cancel()
        await asyncio.wait([beat])  # a cancel of this task still reaches it


async def _keep(queue: WorkQueue, delivery: Delivery) -> None:
    every_s = queue.claim_idle_ms / 1000 / KEEPS_PER_CLAIM_IDLE
    while True:
        await asyncio.sleep(every_s)
        try:
            held = await queue.keep(delivery)
        except Exception as err:
            log.warning(
                "job %s (%s): cannot keep its delivery (%s); tried again",
                delivery.job.kind,
                delivery.id,
                err,
            )
            continue
        if not held:
            log.warning(
                "job %s (%s) ran past the claim idle time unkept: another worker holds it "
                "(or it is off the queue) and may run it too",
                delivery.job.kind,
                delivery.id,
            )
            return
