"""Storage ports of the worker: leases on work done outside a transaction, and cursors."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class WorkerLeases(Protocol):
    """Named leases: who may do a slow step (a host call) that runs with no transaction open.

    A lease is taken in one short transaction, the slow step runs, and the outcome is
    recorded (and the lease released) in another. A lease older than `stale_before` belongs
    to a worker that died mid-step and may be taken over, so the work is never lost. A
    holder whose step may outlast that renews the lease meanwhile (`renew`).
    """

    async def take(self, name: str, now: datetime, stale_before: datetime) -> str | None:
        """Take the lease; a token naming this holder, or None when a live lease holds it.

        On a shared database a concurrent second taker waits for the first transaction and
        then gets None (or the lease, if the first rolled back).
        """
        ...

    async def renew(self, name: str, token: str, now: datetime) -> bool:
        """Stamp the lease as taken at `now` if it is still the one taken with `token`; True
        if it was, False when it was lost (released, or taken over as stale by another)."""
        ...

    async def release(self, name: str, token: str) -> bool:
        """Drop the lease if it is still the one taken with `token`; True if it was."""
        ...


class WorkerCursors(Protocol):
    """Named non-negative positions (e.g. the Lightning node's settle index) that only grow."""

    async def get(self, name: str) -> int | None: ...

    async def advance(self, name: str, position: int) -> None:
        """Set the position to `max(current, position)` (created when missing)."""
        ...
