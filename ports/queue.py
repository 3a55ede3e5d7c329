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


class WorkQueue(Protocol):
    """At-least-once job delivery: a job stays owed until it is acked (or fails skippably)."""

    async def send(self, job: Job) -> str:
        """Enqueue a job; returns its id."""
        ...

    async def receive(self, max_jobs: int = 10, block_ms: int = 100) -> list[Delivery]:
        """Up to `max_jobs` deliveries, oldest first, waiting at most `block_ms` (0: no wait).

        Deliveries left un-acked longer than the queue's claim idle time come back first.
        """
        ...

    async def ack(self, delivery: Delivery) -> None:
        """The job is done (or given up); it is never delivered again."""
        ...

    async def fail(self, delivery: Delivery, *, counted: bool = True) -> None:
        """The job failed: dropped if skippable, otherwise delivered again later, with
        `failures` one higher if `counted` (a transient failure is not counted)."""
        ...
