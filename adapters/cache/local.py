"""An in-process `CatalogueCache`: one node's values with a TTL, a generation and single-flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class LocalCatalogueCache:
    """Entries keyed by name; `invalidate` bumps a generation so a load begun before it is
    never stored, and concurrent misses of one key await the same load.

    `enabled` False (a node that may have missed an invalidation) loads every time.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._now = monotonic
        self._entries: dict[str, tuple[float, Any]] = {}
        self._loading: dict[str, tuple[int, asyncio.Future[Any]]] = {}
        self._generation = 0
        self.enabled = True

    async def get(self, key: str, load: Callable[[], Awaitable[T]], *, ttl: float) -> T:
        if not self.enabled:
            return await load()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._now():
            value: T = entry[1]
            return value
        pending = self._loading.get(key)
        if pending is not None and pending[0] == self._generation:
            shared: T = await asyncio.shield(pending[1])
            return shared
        generation = self._generation
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._loading[key] = (generation, future)
        try:
            loaded = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a failed load with no other waiter is not "lost"
            raise
        finally:
            if self._loading.get(key, (None, None))[1] is future:
                del self._loading[key]
        future.set_result(loaded)
        if generation == self._generation and self.enabled:
            self._entries[key] = (self._now() + ttl, loaded)
        return loaded

    async def invalidate(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget every entry and every load in flight (they finish but are not stored)."""
        self._generation += 1
        self._entries.clear()
        self._loading.clear()
