"""The in-process NIP-98 replay guard (D26): bounded memory, entries dropped when they expire."""

from __future__ import annotations

import asyncio
import heapq
import logging
from datetime import datetime

from ports.replay import ReplayGuardUnavailable

log = logging.getLogger("lnvps.http.auth")

#: at most this many remembered event ids (~100 bytes each); see `InProcessReplayGuard`.
DEFAULT_CAPACITY = 100_000


class ReplayGuardFull(ReplayGuardUnavailable):
    """Every place in the in-process guard holds a live event id: refuse (503), admit none."""


class InProcessReplayGuard:
    """A `ReplayGuard` for one process (no Redis configured).

    Memory is bounded: expired ids are pruned on every call, and while `capacity` live ids
    are held a new one is refused (`ReplayGuardFull`, 503) rather than admitted by forgetting
    one that is still inside its window: a forgotten id could be replayed (a captured renewal
    paid again from credit or a wallet), a refused one is only retried. A flood of freshly
    signed events therefore costs availability until its own ids expire (at most the event
    window), never money and never memory. Several nodes, or a public API, want Redis.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self._capacity = capacity
        self._until: dict[bytes, datetime] = {}
        self._heap: list[tuple[datetime, bytes]] = []
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._until)

    async def first_use(self, key: bytes, now: datetime, until: datetime) -> bool:
        async with self._lock:
            self._prune(now)
            if key in self._until:
                return False
            if len(self._until) >= self._capacity:
                log.warning("NIP-98 replay cache full (%d live event ids): refused", len(self))
                raise ReplayGuardFull("Too many signed requests at once; retry shortly")
            self._until[key] = until
            heapq.heappush(self._heap, (until, key))
            return True

    def _prune(self, now: datetime) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, key = heapq.heappop(self._heap)
            if key in self._until and self._until[key] <= now:
                del self._until[key]
