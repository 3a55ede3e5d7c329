"""The WorkQueue port: at-least-once delivery of typed jobs between API and worker (§9.1)."""

from __future__ import annotations

from typing import Protocol

import attrs

from ports.jobs import InvalidJob, Job

__all__ = ["Delivery", "InvalidJob", "Job", "WorkQueue"]


@attrs.frozen
class Delivery:
    """A job handed to a consumer; `id` is opaque and only means something to its queue."""

    job: Job
    id: str
    #: delivered before and not acked then (a crashed consumer or a failure being retried)
    redelivered: bool = False
    #: earlier deliveries of this job that failed and were counted (`fail(counted=True)`);
    #: the worker gives a job up after a bound of them (`app.worker.give_up`)
    failures: int = 0
    #: earlier deliveries that failed transiently (`fail(counted=False)`), their consumer alive
    passing: int = 0
    #: deliveries of this job so far, this one included, counted by the queue when it hands
    #: the job out (on Redis the entry's delivery count), whatever became of them
    deliveries: int = 1

    @property
    def crashed(self) -> int:
        """Earlier deliveries that ended with no outcome recorded, neither acked nor failed.

        Every delivery is counted when handed out and every delivery its consumer survived
        ends in `ack` or `fail`, so the rest (`deliveries - 1 - failures - passing`) are the
        ones whose consumer died running the job: a segfault in a driver, an OOM kill,
        SIGKILL, `os._exit`. A few other ends look the same and are counted with them: a
        consumer that lost the queue before its ack or fail got through, and, until it
        ends, a delivery still running on a consumer that failed to `keep` it within the
        claim idle time (its event loop blocked, or the queue unreachable for as long; its
        ack or fail is recorded later, so that over-count does not last).
        """
        return max(0, self.deliveries - 1 - self.failures - self.passing)


class WorkQueue(Protocol):
    """At-least-once job delivery: a job stays owed until it is acked (or fails skippably).

    A delivery is held by the consumer it was handed to; one left without an ack, a fail
    or a `keep` for `claim_idle_ms` is handed to another consumer (its consumer died). A
    consumer running a job keeps it (`keep`) more often than that, so only the deliveries
    of dead consumers are run again (`app.worker.keep_alive`).
    """

    @property
    def claim_idle_ms(self) -> int:
        """How long a delivery may go without an ack, fail or `keep` before another
        consumer may claim it (milliseconds)."""
        ...

    async def send(self, job: Job) -> str:
        """Enqueue a job; returns its id."""
        ...

    async def receive(self, max_jobs: int = 10, block_ms: int = 100) -> list[Delivery]:
        """Up to `max_jobs` deliveries, oldest first, waiting at most `block_ms` (0: no wait).

        Deliveries left un-acked longer than the queue's claim idle time come back first.
        """
        ...

    async def ack(self, delivery: Delivery, *, then: Job | None = None) -> bool:
        """The job is done (or given up); it is never delivered again. True if this call took
        it off the queue; False if it was off already (acked or given up by another consumer
        that held it too, after the claim idle time), so one of two racers can tell.

        `then`: a job sent in the same atomic step as the ack, and only if this call took
        the delivery off (True). A follow-up that must outlive the consumer (the admins'
        notice of a job given up) is so neither lost to a consumer dying between the ack
        and a send, nor sent twice by two consumers holding the same delivery.
        """
        ...

    async def keep(self, delivery: Delivery) -> bool:
        """The delivery's job is still running here: its idle time starts again, so no other
        consumer claims it for `claim_idle_ms` more. Its delivery count stays as it is.
        True while this consumer holds it; False once it is off the queue or held by
        another consumer (this one let the claim idle time pass): then it is not taken back.
        """
        ...

    async def fail(self, delivery: Delivery, *, counted: bool = True) -> None:
        """The job failed: dropped if skippable, otherwise delivered again later, with
        `failures` one higher if `counted`, else `passing` (a transient failure)."""
        ...
