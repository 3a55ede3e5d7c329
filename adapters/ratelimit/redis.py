"""A token bucket per key in Redis, so every API node draws from the same buckets."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

#: KEYS[1] bucket hash; ARGV: now (s), rate (tokens/s), burst, ttl (s). Returns the wait in
#: milliseconds (0: a token was taken). Atomic in Redis, so concurrent nodes never overdraw.
_TAKE = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return wait
"""


class RedisRateLimiter:
    """The `MemoryRateLimiter` rule, kept in Redis hashes `{prefix}{key}` that expire when full.

    `now` is wall-clock time (shared by the nodes). A Redis outage lets the request through
    (logged): an unavailable limiter must not take the payment endpoints down with it.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        per_minute: float,
        burst: int,
        *,
        key_prefix: str = "ratelimit:",
        now: Callable[[], float] = time.time,
    ) -> None:
        if per_minute <= 0 or burst <= 0:
            raise ValueError("per_minute and burst must be positive")
        self._redis = redis
        self._rate = per_minute / 60.0
        self._burst = burst
        self._prefix = key_prefix
        self._now = now
        self._ttl = max(1, int(burst / self._rate) + 1)

    async def acquire(self, key: str) -> float:
        try:
            wait = await self._redis.eval(
                _TAKE,
                1,
                self._prefix + key,
                repr(self._now()),
                repr(self._rate),
                str(self._burst),
                str(self._ttl),
            )
        except RedisError as err:
            log.warning("rate limiter unavailable, request let through: %s", err)
            return 0.0
        return int(wait) / 1000.0
