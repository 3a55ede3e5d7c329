"""The in-process NIP-98 replay guard (D26): bounded memory, entries dropped when they expire."""

from __future__ import annotations

import asyncio
import heapq
import logging
from datetime import datetime

log = logging.getLogger("lnvps.http.auth")

#: at most this many remembered event ids (~100 bytes each); see `InProcessReplayGuard`.
DEFAULT_CAPACITY = 100_000


class InProcessReplayGuard:
    """A `ReplayGuard` for one process (no Redis configured).

    Memory is bounded: expired ids are pruned on every call, and when `capacity` live ids are
    held the one closest to its expiry is forgotten (logged), so a flood of freshly signed
    events can only shorten how long the oldest ids are remembered, never exhaust memory.
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
            while len(self._until) >= self._capacity:
                _, oldest = heapq.heappop(self._heap)
                if self._until.pop(oldest, None) is not None:
                    log.warning("NIP-98 replay cache full: forgot an unexpired event id")
            self._until[key] = until
            heapq.heappush(self._heap, (until, key))
            return True

    def _prune(self, now: datetime) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, key = heapq.heappop(self._heap)
            if key in self._until and self._until[key] <= now:
                del self._until[key]
