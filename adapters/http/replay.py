"""The in-process NIP-98 replay guard (D26): bounded memory, entries dropped when they expire,
and each client's share of it bounded so that one client cannot lock every other one out."""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections.abc import Sequence
from datetime import datetime

import attrs

from adapters.http.client_limit import WIDE_V6_SCALE
from ports.replay import (
    ADDRESS_SHARE,
    KEY_SHARE,
    ReplayGuardUnavailable,
    ReplayShareExceeded,
    Share,
)

log = logging.getLogger("lnvps.http.auth")

#: at most this many remembered event ids; see `InProcessReplayGuard`. About 230 bytes each,
#: up to 800 with their owners' counts when every id has a key and a network of its own (a
#: flood of fresh keys): at most some 80 MB when full.
DEFAULT_CAPACITY = 100_000


class ReplayGuardFull(ReplayGuardUnavailable):
    """Every place in the in-process guard holds a live event id: refuse (503), admit none."""


@attrs.frozen
class ReplayShares:
    """How many live event ids one client may hold in a bounded replay guard (D26).

    Without shares, one client with free keys filled the guard's `DEFAULT_CAPACITY`: every
    event dated at the edge of the window stays alive for the whole window, and while the
    guard was full every signed write of every user was 503. With them a new id is charged to
    its signing key and to the client's networks (`client_keys`: the IPv4 address, or the
    IPv6 /64 and /48); a client over any of its shares gets 429 with `Retry-After` and
    everyone else goes on.

    The numbers: a key's share (500 live ids) and an address's (1 000; a /48's is
    `WIDE_V6_SCALE` times that) are far above what a person or a script does inside one
    event window (the LNVPS clients sign one event per request: 1 000 is well over one write
    a second for ten minutes), even for a household, office or carrier NAT behind one IPv4;
    yet one address fills 1 % of the guard and one /48 8 %, so only a client that controls a
    hundred addresses (or a dozen /48s) can fill it. A public deployment, where that is
    cheap, wants Redis (no bound to fill). Behind a reverse proxy the addresses are only
    told apart with `lnurl.trust-forwarded-for`, as for every per-address limit.
    """

    per_key: int = KEY_SHARE
    per_address: int = ADDRESS_SHARE

    def of(self, pubkey: bytes, addresses: Sequence[str]) -> tuple[Share, ...]:
        """The shares a new id of `pubkey` from a client with `addresses` (`client_keys`,
        narrowest first) is charged to."""
        shares: list[Share] = [(f"key:{pubkey.hex()}", self.per_key)]
        for wide, address in enumerate(addresses):
            scale = WIDE_V6_SCALE if wide else 1
            shares.append((f"net:{address}", self.per_address * scale))
        return tuple(shares)


@attrs.define
class _Entry:
    until: datetime
    owners: tuple[str, ...]


class InProcessReplayGuard:
    """A `ReplayGuard` for one process (no Redis configured).

    Memory is bounded: expired ids are pruned on every call, and while `capacity` live ids
    are held a new one is refused (`ReplayGuardFull`, 503) rather than admitted by forgetting
    one that is still inside its window: a forgotten id could be replayed (a captured renewal
    paid again from credit or a wallet), a refused one is only retried.

    So that no single client can get the guard to that point, each owner named in a call's
    `shares` (a key, a client network: `ReplayShares`) may hold at most its share of live ids:
    beyond it, that client alone is refused (`ReplayShareExceeded`, 429, `Retry-After` until
    its soonest id expires). A share refuses; it never forgets an id either. Several nodes,
    or a public API, want Redis.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self._capacity = capacity
        self._live: dict[bytes, _Entry] = {}
        self._heap: list[tuple[datetime, bytes]] = []
        #: per owner, a heap of the expiries of its live ids (its length is what it holds)
        self._held: dict[str, list[datetime]] = {}
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._live)

    def held_by(self, owner: str) -> int:
        """How many live ids (as of the last call) are charged to `owner`."""
        return len(self._held.get(owner, ()))

    def owners(self) -> int:
        """How many owners hold live ids (as of the last call): an owner is forgotten with
        its last id, so what the counts take stays bounded by the ids."""
        return len(self._held)

    async def first_use(
        self, key: bytes, now: datetime, until: datetime, shares: Sequence[Share] = ()
    ) -> bool:
        async with self._lock:
            self._prune(now)
            if key in self._live:
                return False
            owners = dict(shares)
            for owner, share in owners.items():
                held = self._held.get(owner)
                if held is not None and len(held) >= share:
                    log.warning("NIP-98 replay share of %s used up (%d live ids)", owner, share)
                    raise ReplayShareExceeded(
                        "Too many signed requests from this client; retry later",
                        _seconds_until(held[0], now),
                    )
            if len(self._live) >= self._capacity:
                log.warning("NIP-98 replay cache full (%d live event ids): refused", len(self))
                raise ReplayGuardFull(
                    "Too many signed requests at once; retry shortly",
                    _seconds_until(self._heap[0][0], now),
                )
            self._live[key] = _Entry(until, tuple(owners))
            heapq.heappush(self._heap, (until, key))
            for owner in owners:
                heapq.heappush(self._held.setdefault(owner, []), until)
            return True

    def _prune(self, now: datetime) -> None:
        """Forget every id whose window is over, and take it off its owners' counts.

        Ids leave in the order of their expiry, so an owner's soonest expiry is always the
        one of the id leaving now (all earlier ones left before): popping it keeps each
        owner's heap exactly the expiries of its live ids."""
        while self._heap and self._heap[0][0] <= now:
            _, key = heapq.heappop(self._heap)
            entry = self._live.get(key)
            if entry is None or entry.until > now:
                continue
            del self._live[key]
            for owner in entry.owners:
                held = self._held[owner]
                heapq.heappop(held)
                if not held:
                    del self._held[owner]


def _seconds_until(when: datetime, now: datetime) -> int:
    """Whole seconds (≥ 1) from `now` until `when`."""
    return max(1, math.ceil((when - now).total_seconds()))
