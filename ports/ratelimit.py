"""The rate-limit port: how many requests one client may make (D25: unauthenticated LNURL)."""

from __future__ import annotations

from typing import Protocol


class RateLimiter(Protocol):
    """A token bucket per key: `burst` requests at once, refilled at a steady rate."""

    async def acquire(self, key: str) -> float:
        """Take one token for `key`: 0.0 when allowed, else the seconds until one is free."""
        ...
