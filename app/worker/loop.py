"""The job loop and the 30 s schedulers of the worker (§9.1), stoppable by an event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from app.worker.dispatch import BadJob, Handler, JobHandlers
from app.worker.give_up import MAX_FAILED_DELIVERIES, counts, give_up, poisoned, strikes
from app.worker.keep_alive import kept
from ports.jobs import CheckSubscriptions, CheckVms
from ports.queue import Delivery, Job, WorkQueue
from ports.storage import StorageBusy

log = logging.getLogger("lnvps.worker.loop")

#: how often CheckVms and CheckSubscriptions are sent (§9.1 schedules).
SCHEDULE_INTERVAL_S = 30.0
#: pause after a failed job, so a job that always fails is not retried in a tight loop.
FAILURE_PAUSE_S = 1.0
#: runs of a job the database refuses as busy (StorageBusy), the n-th after n pauses of
#: BUSY_PAUSE_S: a skippable job (an admin's start or stop) would be dropped on failure,
#: and a busy database is a passing state (a lock wait timeout, a deadlock)
BUSY_ATTEMPTS = 3
BUSY_PAUSE_S = 0.5
#: ... but only while the job has been at it for less than this: a busy answer can come after
#: a whole lock wait (30-50 s), and three of those in place would hold the worker (and the
#: job's delivery, kept while it runs) for minutes; failed, it comes back from the queue
BUSY_RETRY_WITHIN_S = 5.0


async def wait_or_stop(stop_event: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, waking early when `stop_event` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_event.wait(), timeout=seconds)


async def process(
    queue: WorkQueue,
    handlers: JobHandlers,
    delivery: Delivery,
    *,
    busy_pause_s: float = BUSY_PAUSE_S,
    stop_event: asyncio.Event | None = None,
) -> bool:
    """Run one delivery: ack on success, `fail` on error (skippable kinds are dropped there).

    A kind with no handler here is acked with a warning: no other worker would take it.
    A job whose earlier deliveries made MAX_FAILED_DELIVERIES strikes (`give_up.strikes`:
    failures for good and deliveries the worker did not survive) is given up without
    running (`give_up.poisoned`): a job that kills the worker kills no more of them. A
    non-skippable job whose MAX_FAILED_DELIVERIES-th strike this failure is (an error that
    is not transient, `give_up.counts`) is given up instead of failed; a transient failure
    is failed uncounted and comes back however often it takes. While the handler runs the
    delivery is kept (`keep_alive.kept`), so no other worker claims it for being slow.
    Returns False when the job failed or was given up.
    """
    job = delivery.job
    handler = handlers.get(job)
    if handler is None:
        log.warning("no handler for %s; job dropped", job.kind)
        await queue.ack(delivery)
        return True
    if poisoned(delivery):
        await give_up(queue, delivery, None)
        return False
    try:
        async with kept(queue, delivery):
            await _busy_retried(handler, job, busy_pause_s, stop_event)
    except asyncio.CancelledError:
        raise
    except BadJob as err:
        log.error("job %s (%s) is malformed and dropped: %s", job.kind, delivery.id, err)
        await queue.ack(delivery)
        return False
    except StorageBusy as err:  # transient, no bug: a warning, and the queue's usual retry
        again = "dropped" if job.skippable else "delivered again later"
        log.warning(
            "job %s (%s): database busy (%s); %s", job.kind, delivery.id, err.__cause__, again
        )
        await queue.fail(delivery, counted=False)
        return False
    except Exception as err:
        counted = counts(err)
        if counted and not job.skippable and strikes(delivery) + 1 >= MAX_FAILED_DELIVERIES:
            await give_up(queue, delivery, err)
            return False
        again = "dropped" if job.skippable else "delivered again later"
        log.exception("job %s (%s) failed; %s", job.kind, delivery.id, again)
        await queue.fail(delivery, counted=counted)
        return False
    await queue.ack(delivery)
    return True


async def _busy_retried(
    handler: Handler, job: Job, pause_s: float, stop_event: asyncio.Event | None = None
) -> None:
    """`handler(job)`, run again after a pause while the database answers busy, up to
    BUSY_ATTEMPTS runs within BUSY_RETRY_WITHIN_S (a busy answer changed nothing: its
    transaction was rolled back). A stop cuts the pause short, not the runs: the job in
    hand is finished (or given back) before the worker stops, without waiting the pause."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    for attempt in range(1, BUSY_ATTEMPTS + 1):
        try:
            await handler(job)
            return
        except StorageBusy as err:
            if attempt == BUSY_ATTEMPTS or loop.time() - started >= BUSY_RETRY_WITHIN_S:
                raise
            log.warning("job %s: database busy (%s); run again", job.kind, err.__cause__)
            await wait_or_stop(stop_event or asyncio.Event(), pause_s * attempt)


async def run_worker(
    queue: WorkQueue,
    handlers: JobHandlers,
    stop_event: asyncio.Event,
    *,
    block_ms: int = 100,
    failure_pause_s: float = FAILURE_PAUSE_S,
) -> None:
    """Receive and run jobs one at a time until `stop_event` is set; the job in hand is
    finished before stopping.

    One at a time, so that a job taken is a job started: the queue counts a delivery when it
    hands it out, and a job received in a batch behind one that kills the worker would be
    counted as a delivery the worker did not survive too (`Delivery.crashed`), the poison
    job taking its batch down with it towards being given up. Nor does a job wait in hand
    behind a slow one past the claim idle time, to be claimed and run by another worker.
    """
    while not stop_event.is_set():
        try:
            deliveries = await queue.receive(max_jobs=1, block_ms=block_ms)
        except Exception:
            log.exception("receiving jobs failed; retrying")
            await wait_or_stop(stop_event, failure_pause_s)
            continue
        failed = False
        for delivery in deliveries:
            try:
                done = await process(
                    queue,
                    handlers,
                    delivery,
                    busy_pause_s=failure_pause_s / 2,
                    stop_event=stop_event,
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                # the queue itself failed (an ack or a fail lost with Redis): the delivery
                # stays un-acked and comes back after the queue's claim idle time (every
                # handler is idempotent); the worker must not stop for it
                log.exception(
                    "job %s (%s): the queue failed; it comes back", delivery.job.kind, delivery.id
                )
                done = False
            failed = not done or failed
        if failed:
            await wait_or_stop(stop_event, failure_pause_s)


async def run_scheduler(
    queue: WorkQueue,
    jobs: Sequence[Callable[[], Job]],
    stop_event: asyncio.Event,
    *,
    interval_s: float = SCHEDULE_INTERVAL_S,
) -> None:
    """Send one job of each factory now and then every `interval_s` until stopped."""
    while not stop_event.is_set():
        for make in jobs:
            job = make()
            try:
                await queue.send(job)
            except Exception:
                log.exception("could not schedule %s", job.kind)
        await wait_or_stop(stop_event, interval_s)


async def run(
    queue: WorkQueue,
    handlers: JobHandlers,
    stop_event: asyncio.Event,
    *,
    interval_s: float = SCHEDULE_INTERVAL_S,
) -> None:
    """The worker process: the job loop plus the CheckVms / CheckSubscriptions schedule.

    The composition root builds it as::

        deps = WorkerDeps(uow_factory=..., clock=..., hosts=VmHostClients(...), queue=queue,
                          notifier=QueuedNotifier(queue), delete_after_days=settings.delete_after,
                          public_url=..., read_only=settings.read_only, states=vm_state_cache)
        handlers = build_handlers(deps, delivery=SmtpNotifier(...) or LogNotifier())
        await run(queue, handlers, stop_event)
    """
    await asyncio.gather(
        run_worker(queue, handlers, stop_event),
        run_scheduler(queue, (CheckVms, CheckSubscriptions), stop_event, interval_s=interval_s),
    )


async def drain(queue: WorkQueue, handlers: JobHandlers, *, max_jobs: int = 1000) -> int:
    """Run queued jobs until none is ready (tests, `lnvps` one-shot runs); how many ran.

    Stops after `max_jobs` so a job that always fails cannot loop forever.
    """
    ran = 0
    while ran < max_jobs:
        deliveries = await queue.receive(max_jobs=1, block_ms=0)
        if not deliveries:
            return ran
        await process(queue, handlers, deliveries[0])
        ran += 1
    return ran
