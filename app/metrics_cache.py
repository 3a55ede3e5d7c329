"""A small in-process cache of VM metrics: repeated reads within seconds cost no host call."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

from ports.vmhost import TimeSeriesPoint

#: how long one host answer is served again (the graphs' resolution is a minute)
METRICS_TTL_SECONDS = 30.0
#: how long an empty answer (a VM just started: its host has no sample yet) is served again
EMPTY_METRICS_TTL_SECONDS = 5.0
#: VMs kept at most; the least recently stored are dropped first
METRICS_MAX_ENTRIES = 1024


class MetricsCache:
    """The last metrics read per VM, for `ttl` seconds, at most `max_entries` VMs.

    `GET …/time-series` is a GET, so one signed NIP-98 event may be replayed for its whole
    window: without this every replay was a call to the host (Proxmox). Seconds here are
    pacing on a monotonic clock (`now`), never business time. An empty answer is kept only
    `empty_ttl` (at most `ttl`): the host has no sample yet for a VM just started, and its
    first graph should not wait the whole window; one host call per VM per `empty_ttl` still
    bounds what replays cost.
    """

    def __init__(
        self,
        ttl: float = METRICS_TTL_SECONDS,
        max_entries: int = METRICS_MAX_ENTRIES,
        *,
        empty_ttl: float = EMPTY_METRICS_TTL_SECONDS,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl, self._max, self._now = ttl, max_entries, now
        self._empty_ttl = min(empty_ttl, ttl)
        self._entries: OrderedDict[int, tuple[float, Sequence[TimeSeriesPoint]]] = OrderedDict()

    async def get(
        self, vm_id: int, load: Callable[[], Awaitable[Sequence[TimeSeriesPoint]]]
    ) -> Sequence[TimeSeriesPoint]:
        """The VM's cached metrics while fresh, else `load()`'s, stored for `ttl`."""
        now = self._now()
        hit = self._entries.get(vm_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        points = await load()
        self._entries.pop(vm_id, None)
        self._entries[vm_id] = (self._now() + (self._ttl if points else self._empty_ttl), points)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return points
