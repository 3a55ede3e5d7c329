"""The shared-data cache port: slow-changing catalogue data kept near the API, dropped on change."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class CatalogueCache(Protocol):
    """Values loaded once and served until their TTL or an invalidation, whichever is first.

    `invalidate` drops every entry on every node of the deployment (an admin changed the
    catalogue); after it returns, no node serves a value loaded before it on this node, and
    other nodes stop as soon as the message reaches them (no TTL wait). Concurrent misses of
    one key share one load.
    """

    async def get(self, key: str, load: Callable[[], Awaitable[T]], *, ttl: float) -> T: ...

    async def invalidate(self) -> None: ...
