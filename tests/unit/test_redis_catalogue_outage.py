"""The Redis-invalidated catalogue cache says once that Redis is gone and once that it is back."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from adapters.cache.redis_catalogue import RedisInvalidatedCache


class _PubSub:
    def __init__(self, broker: _FlakyRedis) -> None:
        self._broker = broker
        self._pending: list[dict[str, Any]] = []

    async def subscribe(self, channel: str) -> None:
        self._broker.attempts += 1
        if self._broker.attempts <= self._broker.down_for:
            raise RedisConnectionError("Connection refused")
        self._pending.append({"type": "subscribe", "channel": channel})

    async def get_message(self, timeout: float) -> dict[str, Any] | None:  # noqa: ASYNC109
        if self._pending:
            return self._pending.pop(0)
        await asyncio.sleep(0.001)
        return None

    async def aclose(self) -> None:
        return None


class _FlakyRedis:
    """Refuses the first `down_for` subscriptions, then accepts."""

    def __init__(self, down_for: int) -> None:
        self.down_for = down_for
        self.attempts = 0

    def pubsub(self) -> _PubSub:
        return _PubSub(self)


async def test_outage_is_logged_once_and_recovery_once(caplog: pytest.LogCaptureFixture) -> None:
    redis = _FlakyRedis(down_for=5)
    cache = RedisInvalidatedCache(cast(Any, redis), "chan", retry_s=0.0001)
    stop = asyncio.Event()
    caplog.set_level(logging.DEBUG, logger="lnvps.cache")
    listener = asyncio.create_task(cache.listen(stop))
    await asyncio.wait_for(cache.subscribed.wait(), 5)
    stop.set()
    await listener
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert redis.attempts == 6
    assert warnings == [
        "catalogue invalidation channel lost: Connection refused",
        "catalogue invalidation channel back",
    ]
    assert debug == ["catalogue invalidation channel still down: Connection refused"] * 4
