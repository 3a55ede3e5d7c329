"""A `RateStore` that keeps the shared (Redis) snapshot in process for a second or two."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from domain.exchange import ExchangeRate, RateTable
from ports.rates import RateStore

#: rates refresh every two minutes (fixed demo rates every 10 s); a request may see a snapshot
#: this much older than Redis's, and freshness is still judged per lookup against the clock.
RATES_TTL_S = 2.0


class CachedRateStore:
    """Reads of `inner.table()` shared for `ttl` seconds; `save` writes through and forgets."""

    def __init__(
        self,
        inner: RateStore,
        ttl: float = RATES_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._ttl = ttl
        self._now = monotonic
        self._cached: tuple[float, RateTable] | None = None
        self._generation = 0  # bumped by `save`: a read begun before it is not kept

    async def save(self, rates: Sequence[ExchangeRate]) -> None:
        self._generation += 1
        self._cached = None
        await self._inner.save(rates)
        self._generation += 1
        self._cached = None

    async def table(self) -> RateTable:
        cached = self._cached
        if cached is not None and cached[0] > self._now():
            return cached[1]
        generation = self._generation
        table = await self._inner.table()
        if generation == self._generation:
            self._cached = (self._now() + self._ttl, table)
        return table
