"""The NIP-98 replay guard in Redis (D26): `SET key NX EX ttl`, shared by every API process."""

from __future__ import annotations

import math
from datetime import datetime

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ports.replay import ReplayGuardUnavailable

KEY_PREFIX = "nip98:"


class RedisReplayGuard:
    """A `ReplayGuard` whose keys expire in Redis itself; an outage refuses (503), never admits."""

    def __init__(self, redis: aioredis.Redis, key_prefix: str = KEY_PREFIX) -> None:
        self._redis = redis
        self._prefix = key_prefix

    async def first_use(self, key: bytes, now: datetime, until: datetime) -> bool:
        ttl = max(1, math.ceil((until - now).total_seconds()))
        try:
            created = await self._redis.set(f"{self._prefix}{key.hex()}", b"1", nx=True, ex=ttl)
        except RedisError as exc:
            raise ReplayGuardUnavailable("Authentication store unavailable") from exc
        return bool(created)
