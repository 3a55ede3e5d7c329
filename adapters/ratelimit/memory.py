"""An in-process token bucket per key (one node; Redis shares the buckets between nodes)."""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs


@attrs.define
class _Bucket:
    tokens: float
    at: float


class MemoryRateLimiter:
    """`burst` tokens per key, refilled at `per_minute` a minute; `now` is a monotonic clock.

    Seconds are floats here: this measures request pacing, never money or business time.
    Full buckets are forgotten once more than `max_keys` are kept, so a flood of distinct
    addresses cannot grow memory without bound.
    """

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        now: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if per_minute <= 0 or burst <= 0:
            raise ValueError("per_minute and burst must be positive")
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._now = now
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    async def acquire(self, key: str) -> float:
        now = self._now()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate

    def _forget_full(self, now: float) -> None:
        refill = self._burst / self._rate
        for key in [k for k, b in self._buckets.items() if now - b.at >= refill]:
            del self._buckets[key]
        if len(self._buckets) >= self._max_keys:  # all busy: drop the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k].at)
            for key in oldest[: len(oldest) // 2]:
                del self._buckets[key]
