"""An in-process token bucket per key (one node; Redis shares the buckets between nodes)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence, Set

import attrs

from ports.ratelimit import Wider


@attrs.define
class _Bucket:
    tokens: float
    at: float
    #: times the limiter's burst and rate this bucket holds
    scale: int = 1


class MemoryRateLimiter:
    """`burst` tokens per key, refilled at `per_minute` a minute; `now` is a monotonic clock.

    Seconds are floats here: this measures request pacing, never money or business time.
    At most `max_keys` buckets are kept, so a flood of distinct addresses cannot grow memory
    without bound. Only a granted request stores a new key (a refused one has taken nothing:
    its fresh bucket would be full, the same as none). When the table is full, full buckets
    are forgotten first, then the fullest half of the rest: an emptied bucket, the one that
    refuses a client, is the last to go, so a flood of new keys cannot reset it.
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
        layers: dict[str, _Bucket] = {}
        for k, scale in ((key, 1), *wider):
            layers.setdefault(k, self._refilled(k, now, scale))
        wait = max(
            ((1.0 - b.tokens) / (self._rate * b.scale) for b in layers.values() if b.tokens < 1.0),
            default=0.0,
        )
        if wait > 0.0:  # all or none: a bucket that refuses leaves the others untouched
            return wait
        for bucket in layers.values():
            bucket.tokens -= 1.0
        new = [k for k in layers if k not in self._buckets]
        if new and len(self._buckets) + len(new) > self._max_keys:
            self._forget(now, keep=layers.keys(), room=len(new))
        for k in new:
            self._buckets[k] = layers[k]
        return 0.0

    def _refilled(self, key: str, now: float, scale: int) -> _Bucket:
        """`key`'s bucket refilled to `now`, or a full new one (`scale` times the burst and
        rate), not stored yet."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return _Bucket(self._burst * scale, now, scale)
        bucket.tokens = self._tokens(bucket, now)
        bucket.at = now
        return bucket

    def _tokens(self, bucket: _Bucket, now: float) -> float:
        refilled = bucket.tokens + (now - bucket.at) * self._rate * bucket.scale
        return min(self._burst * bucket.scale, refilled)

    def _forget(self, now: float, keep: Set[str], room: int) -> None:
        """Make `room` for new keys: drop the full buckets (the same as none), then, if that is
        not enough, the fullest half of the others (never those in `keep`, the request's own)."""

        def fullness(k: str) -> float:
            bucket = self._buckets[k]
            return self._tokens(bucket, now) / (self._burst * bucket.scale)

        others = [k for k in self._buckets if k not in keep]
        for k in [k for k in others if fullness(k) >= 1.0]:
            del self._buckets[k]
        if len(self._buckets) + room > self._max_keys:  # all busy: drop the fullest half
            busy = sorted((k for k in self._buckets if k not in keep), key=fullness)
            for k in busy[len(busy) // 2 :]:
                del self._buckets[k]
