"""A `CatalogueCache` for several nodes: in-process values, invalidated through Redis pub/sub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from adapters.cache.local import LocalCatalogueCache

T = TypeVar("T")
log = logging.getLogger("lnvps.cache")

CHANNEL = "catalogue:invalidate"
RETRY_S = 1.0
#: the longest wait between two attempts while Redis stays unreachable
RETRY_MAX_S = 30.0


class RedisInvalidatedCache:
    """Each node keeps its own values; `invalidate` clears this node and publishes to the others.

    Values are cached only while this node's subscription is live: before `listen` has
    subscribed, or after the connection dropped (a message may have been missed), every `get`
    loads fresh data, and the local values are cleared when the subscription comes back.
    """

    def __init__(
        self, redis: aioredis.Redis, channel: str = CHANNEL, retry_s: float = RETRY_S
    ) -> None:
        self._redis = redis
        self._channel = channel
        self._retry_s = retry_s
        self._lost = False
        self._local = LocalCatalogueCache()
        self._local.enabled = False
        self.subscribed = asyncio.Event()

    async def get(self, key: str, load: Callable[[], Awaitable[T]], *, ttl: float) -> T:
        return await self._local.get(key, load, ttl=ttl)

    async def invalidate(self) -> None:
        self._local.clear()
        try:
            await self._redis.publish(self._channel, b"1")
        except RedisError as exc:  # the others fall back on their TTL; say so loudly
            log.error("catalogue invalidation not published: %s", exc)

    async def listen(self, stop: asyncio.Event) -> None:
        """Run until `stop`: subscribe, clear on every message, resubscribe after a failure.

        While Redis stays unreachable the loss is logged once (a warning), the attempts back
        off up to `RETRY_MAX_S`, and the return of the channel is logged once."""
        failures = 0
        while not stop.is_set():
            try:
                await self._listen_once(stop)
            except (RedisError, OSError) as exc:
                if failures == 0 or self.subscribed.is_set():
                    self._lost = True
                    log.warning("catalogue invalidation channel lost: %s", exc)
                    failures = 0
                else:
                    log.debug("catalogue invalidation channel still down: %s", exc)
                failures += 1
            finally:
                self._local.enabled = False
                self._local.clear()
                self.subscribed.clear()
            if not stop.is_set():
                wait = min(self._retry_s * 2 ** min(max(failures - 1, 0), 16), RETRY_MAX_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)

    async def _listen_once(self, stop: asyncio.Event) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            while not stop.is_set():
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    if self._lost:
                        log.warning("catalogue invalidation channel back")
                        self._lost = False
                    self._local.clear()
                    self._local.enabled = True
                    self.subscribed.set()
                elif message["type"] == "message":
                    self._local.clear()
        finally:
            await pubsub.aclose()
