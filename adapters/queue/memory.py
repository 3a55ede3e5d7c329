"""An in-process work queue on asyncio.Queue, with the Redis adapter's delivery rules."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

import attrs

from ports.queue import Delivery, Job

DEFAULT_CLAIM_IDLE_MS = 10_000


@attrs.define
class _Pending:
    job: Job
    delivered_at: float


class InProcessQueue:
    """FIFO jobs for a single process (no Redis), for dev runs and tests.

    Like the Redis adapter, a delivery not acked within `claim_idle_ms` (its consumer task
    died) is delivered again. Unlike the reference's in-process channel, which dropped every
    failed job, `fail` re-queues a non-skippable job once per call, at the back of the
    queue and without delay: a job that fails keeps coming back (as on Redis, where it
    returns every ~10 s), so the worker must not spin on it, and its counted failures are
    kept per job (`Delivery.failures`) so the worker can give it up. Like the Redis stream,
    it counts every hand-out of a job (`Delivery.deliveries`) and its transient failures
    (`Delivery.passing`), so a delivery whose consumer task died without an ack or fail
    shows as `Delivery.crashed` and counts toward giving the job up. A running job's
    consumer keeps its delivery (`keep`: its idle time starts again), so a slow job is not
    delivered again while it runs; every consumer in process shares this one object, so
    `keep` holds a delivery for whichever consumer runs it. A job that kills the
    whole process takes the queue with it: nothing survives a restart, so in process such
    a job is lost, not redelivered for ever. As the Redis stream's trim does, it keeps every
    job waiting or handed out and not acked, however many, and drops a job once acked.
    """

    def __init__(
        self,
        *,
        claim_idle_ms: int = DEFAULT_CLAIM_IDLE_MS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ready: asyncio.Queue[tuple[str, Job, bool]] = asyncio.Queue()
        self._pending: dict[str, _Pending] = {}
        self._failures: dict[str, int] = {}
        self._passing: dict[str, int] = {}
        self._deliveries: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._claim_idle_ms = claim_idle_ms
        self._claim_idle_s = claim_idle_ms / 1000
        self._monotonic = monotonic

    async def send(self, job: Job) -> str:
        return self._put(job)

    def _put(self, job: Job) -> str:
        job_id = str(next(self._ids))
        self._ready.put_nowait((job_id, job, False))
        return job_id

    async def receive(self, max_jobs: int = 10, block_ms: int = 100) -> list[Delivery]:
        if max_jobs < 1 or block_ms < 0:
            raise ValueError(f"need max_jobs >= 1 and block_ms >= 0, got {max_jobs}, {block_ms}")
        reclaimed = self._reclaim(max_jobs)
        if reclaimed:
            return reclaimed
        if self._ready.empty() and block_ms > 0:
            try:
                async with asyncio.timeout(block_ms / 1000):
                    first = await self._ready.get()
            except TimeoutError:
                return []
            taken = [first]
        else:
            taken = []
        while len(taken) < max_jobs and not self._ready.empty():
            taken.append(self._ready.get_nowait())
        now = self._monotonic()
        for job_id, job, _ in taken:
            self._pending[job_id] = _Pending(job, now)
        return [self._delivery(job_id, job, again) for job_id, job, again in taken]

    @property
    def claim_idle_ms(self) -> int:
        return self._claim_idle_ms

    async def keep(self, delivery: Delivery) -> bool:
        pending = self._pending.get(delivery.id)
        if pending is None:
            return False
        pending.delivered_at = self._monotonic()
        return True

    def _delivery(self, job_id: str, job: Job, again: bool) -> Delivery:
        """The delivery of a job being handed out: its hand-outs counted, this one too."""
        deliveries = self._deliveries[job_id] = self._deliveries.get(job_id, 0) + 1
        return Delivery(
            job,
            job_id,
            again,
            failures=self._failures.get(job_id, 0),
            passing=self._passing.get(job_id, 0),
            deliveries=deliveries,
        )

    def _forget(self, job_id: str) -> None:
        for counts in (self._failures, self._passing, self._deliveries):
            counts.pop(job_id, None)

    def _reclaim(self, max_jobs: int) -> list[Delivery]:
        """Deliveries idle past the claim time, oldest id first (all of them are looked at; the
        Redis queue walks its pending list a stretch per receive, on from the last)."""
        now = self._monotonic()
        idle = [
            job_id
            for job_id, pending in self._pending.items()
            if now - pending.delivered_at >= self._claim_idle_s
        ]
        claimed = sorted(idle, key=int)[:max_jobs]
        for job_id in claimed:
            self._pending[job_id].delivered_at = now
        return [self._delivery(i, self._pending[i].job, True) for i in claimed]

    async def ack(self, delivery: Delivery, *, then: Job | None = None) -> bool:
        if self._pending.pop(delivery.id, None) is None:
            return False
        self._forget(delivery.id)
        if then is not None:  # no await since the pop: one step for the other tasks
            self._put(then)
        return True

    async def fail(self, delivery: Delivery, *, counted: bool = True) -> None:
        pending = self._pending.pop(delivery.id, None)
        if pending is None:
            return
        if pending.job.skippable:
            self._forget(delivery.id)
            return
        counts = self._failures if counted else self._passing
        counts[delivery.id] = counts.get(delivery.id, 0) + 1
        self._ready.put_nowait((delivery.id, pending.job, True))

    @property
    def pending_count(self) -> int:
        """Deliveries handed out and not yet acked."""
        return len(self._pending)
