"""The table from job type to handler that the worker loop dispatches on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

from ports.queue import Job

J = TypeVar("J", bound=Job)
Handler = Callable[[Job], Awaitable[None]]


class BadJob(ValueError):
    """A job that cannot be run as sent; running it again cannot help, so it is dropped."""


class JobHandlers:
    """The handler of each job type this worker runs; a job of another type has none."""

    def __init__(self) -> None:
        self._by_type: dict[type[Job], Handler] = {}

    def on(self, kind: type[J], handler: Callable[[J], Awaitable[None]]) -> None:
        """Run `handler` for jobs of exactly `kind`."""
        self._by_type[kind] = cast(Handler, handler)

    def get(self, job: Job) -> Handler | None:
        return self._by_type.get(type(job))

    async def run(self, job: Job) -> None:
        """Run `job` with its handler; a job of a type with none is a `KeyError`."""
        handler = self.get(job)
        if handler is None:
            raise KeyError(f"no handler for {job.kind}")
        await handler(job)
