"""The NIP-98 replay guard in Redis (D26): `SET key NX EX ttl`, shared by every API process."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ports.replay import ReplayGuardUnavailable, Share

KEY_PREFIX = "nip98:"
#: seconds a key outlives the event's window by the recording node's clock: API nodes whose
#: clocks are up to this far apart never accept one event twice (see `RedisReplayGuard`)
CLOCK_MARGIN = 300


class RedisReplayGuard:
    """A `ReplayGuard` whose keys expire in Redis itself; an outage refuses (503), never admits.

    Per-client `shares` are not enforced here: this guard has no capacity of its own that a
    client could fill and so refuse everyone else (the in-process guard's problem), and
    counting each client's live keys would take a sorted set per client and a script per
    request, doubling what Redis keeps per event. What a flood costs here is Redis memory,
    about a hundred bytes per event for at most its window. Redis must not evict these keys
    (`maxmemory-policy noeviction`, Redis's default; every other policy may drop a key with
    a TTL): an evicted id could be replayed, while a full Redis refuses the write (503).

    Each node judges an event's window by its own clock, so a key kept only for the window
    left by the recording node's clock (`until - now`) was dropped early when that node ran
    ahead, and a node on time accepted the event again in between. A key lives
    `clock_margin` seconds longer: a replay needs two nodes further apart than that.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        key_prefix: str = KEY_PREFIX,
        clock_margin: int = CLOCK_MARGIN,
    ) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._margin = clock_margin

    async def first_use(
        self, key: bytes, now: datetime, until: datetime, shares: Sequence[Share] = ()
    ) -> bool:
        ttl = max(1, math.ceil((until - now).total_seconds())) + self._margin
        try:
            created = await self._redis.set(f"{self._prefix}{key.hex()}", b"1", nx=True, ex=ttl)
        except RedisError as exc:
            raise ReplayGuardUnavailable("Authentication store unavailable") from exc
        return bool(created)
