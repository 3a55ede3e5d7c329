"""A token bucket per key in Redis, so every API node draws from the same buckets."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ports.ratelimit import Wider

log = logging.getLogger(__name__)

#: KEYS: the bucket hashes; ARGV: now (s), rate (tokens/s), burst, ttl (s), then each key's
#: scale (times the burst and rate). Returns the wait in milliseconds (0: a token was taken
#: from every bucket; else none was). Atomic in Redis, so concurrent nodes never overdraw.
#: A bucket's time `at` only moves forward: a node whose clock lags behind the last one's
#: refills nothing (its wait counts the lag) and leaves `at` as it is, so bouncing between
#: nodes whose clocks disagree refills no more than the fastest clock allows.
_TAKE = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tokens = {}
local times = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local scale = tonumber(ARGV[4 + i])
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local have = tonumber(state[1])
  local at = tonumber(state[2])
  if have == nil or at == nil then
    have = burst * scale
    at = now
  else
    have = math.min(burst * scale, have + math.max(0, now - at) * rate * scale)
    at = math.max(at, now)
  end
  if have < 1 then
    local lag = at - now
    wait = math.max(wait, math.ceil(((1 - have) / (rate * scale) + lag) * 1000))
  end
  tokens[i] = have
  times[i] = at
end
for i, key in ipairs(KEYS) do
  if wait == 0 then
    tokens[i] = tokens[i] - 1
  end
  redis.call('HSET', key, 'tokens', tostring(tokens[i]), 'at', tostring(times[i]))
  redis.call('EXPIRE', key, tonumber(ARGV[4]))
end
return wait
"""


class RedisRateLimiter:
    """The `MemoryRateLimiter` rule, kept in Redis hashes `{prefix}{key}` that expire when full.

    `now` is wall-clock time (shared by the nodes, never put back by one whose clock lags:
    `_TAKE`). A Redis outage lets the request through
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

    async def acquire(self, key: str, wider: Sequence[Wider] = ()) -> float:
        layers = [(key, 1), *wider]
        try:
            wait = await self._redis.eval(
                _TAKE,
                len(layers),
                *(self._prefix + k for k, _ in layers),
                repr(self._now()),
                repr(self._rate),
                str(self._burst),
                str(self._ttl),
                *(str(scale) for _, scale in layers),
            )
        except RedisError as err:
            log.warning("rate limiter unavailable, request let through: %s", err)
            return 0.0
        return int(wait) / 1000.0
