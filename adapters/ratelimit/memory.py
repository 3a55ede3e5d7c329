"""An in-process token bucket per key (one node; Redis shares the buckets between nodes)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import attrs

from ports.ratelimit import Wider


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

    async def acquire(self, key: str, wider: Sequence[Wider] = ()) -> float:
        now = self._now()
        layers = [(self._bucket(k, now, scale), scale) for k, scale in ((key, 1), *wider)]
        wait = max(
            ((1.0 - b.tokens) / (self._rate * scale) for b, scale in layers if b.tokens < 1.0),
            default=0.0,
        )
        if wait == 0.0:  # all or none: a bucket that refuses leaves the others untouched
            for bucket, _ in layers:
                bucket.tokens -= 1.0
        return wait

    def _bucket(self, key: str, now: float, scale: int) -> _Bucket:
        """`key`'s bucket refilled to `now` (`scale` times the burst and rate)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(self._burst * scale, now)
        else:
            refilled = bucket.tokens + (now - bucket.at) * self._rate * scale
            bucket.tokens = min(self._burst * scale, refilled)
            bucket.at = now
        return bucket

    def _forget_full(self, now: float) -> None:
        refill = self._burst / self._rate
        for key in [k for k, b in self._buckets.items() if now - b.at >= refill]:
            del self._buckets[key]
        if len(self._buckets) >= self._max_keys:  # all busy: drop the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k].at)
            for key in oldest[: len(oldest) // 2]:
                del self._buckets[key]
