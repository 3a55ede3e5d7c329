"""Replay guard port: remembers NIP-98 event ids of state-changing requests (D26)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from domain.errors import DomainError


class ReplayGuard(Protocol):
    """A set of single-use keys, each remembered until its own expiry."""

    async def first_use(self, key: bytes, now: datetime, until: datetime) -> bool:
        """Record `key` until `until`; False when it was already recorded and not expired.

        Must be atomic across every process sharing the guard: of two concurrent calls with
        the same key, exactly one gets True. Raises `ReplayGuardUnavailable` when it cannot
        tell (the request is then refused, never let through).
        """
        ...


class ReplayGuardUnavailable(DomainError):
    """The shared replay store cannot be reached: refuse with 503 rather than risk a replay."""

    kind = "unavailable"
