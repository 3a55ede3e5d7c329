"""The rate-limit port: how many requests one client may make (D25: unauthenticated LNURL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

#: a wider bucket a request must also pass: its key, and how many times the limiter's burst
#: and rate it holds (e.g. the /48 around an IPv6 client's /64)
Wider = tuple[str, int]


class RateLimiter(Protocol):
    """A token bucket per key: `burst` requests at once, refilled at a steady rate."""

    async def acquire(self, key: str, wider: Sequence[Wider] = ()) -> float:
        """Take one token for `key` and one from each `wider` bucket, all or none: 0.0 when
        allowed, else the seconds until every one of them has a token (nothing taken)."""
        ...
