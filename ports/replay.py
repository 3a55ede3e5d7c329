"""Replay guard port: remembers NIP-98 event ids of state-changing requests (D26)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from domain.errors import DomainError

#: one owner a remembered key is charged to (a signing key, a client network) and the most
#: live keys that owner may hold at once
Share = tuple[str, int]

#: live event ids one signing key may hold in a bounded guard (the default `replay-shares`)
KEY_SHARE = 500
#: live event ids one client address (IPv4, IPv6 /64) may hold, whatever keys it signs with;
#: an IPv6 /48 holds more (see the in-process guard's `ReplayShares`)
ADDRESS_SHARE = 1_000


class ReplayGuard(Protocol):
    """A set of single-use keys, each remembered until its own expiry."""

    async def first_use(
        self, key: bytes, now: datetime, until: datetime, shares: Sequence[Share] = ()
    ) -> bool:
        """Record `key` until `until`; False when it was already recorded and not expired.

        Must be atomic across every process sharing the guard: of two concurrent calls with
        the same key, exactly one gets True. Raises `ReplayGuardUnavailable` when it cannot
        tell (the request is then refused, never let through).

        `shares` are the owners the new key is charged to, each with the most live keys it
        may hold. A guard whose store is bounded must enforce them (`ReplayShareExceeded`,
        nothing recorded), so one client cannot fill the store that every user needs; a
        guard without such a bound may ignore them. A key seen before is refused (False)
        whatever its owners hold.
        """
        ...


class ReplayGuardUnavailable(DomainError):
    """The shared replay store cannot be reached: refuse with 503 rather than risk a replay."""

    kind = "unavailable"

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        #: whole seconds until it is worth asking again (`Retry-After`); None: unknown
        self.retry_after = retry_after


class ReplayShareExceeded(DomainError):
    """One owner of a new key already holds its share of live keys: 429 for that client
    only, with `Retry-After` until its soonest key expires; other clients go on."""

    kind = "too_many"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
