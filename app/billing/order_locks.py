"""The row locks an order takes before it reads anything (the buyer's, then its region's or its
IP spaces'), and the runs again of a transaction that finds it needs other ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.billing.errors import NoHostAvailable
from app.billing.ip_room import SpacesToLock
from app.billing.placement import NO_HOST
from domain.model import CustomPricing, VmTemplate
from ports.storage import StorageBusy, UnitOfWork, UnitOfWorkFactory

T = TypeVar("T")
L = TypeVar("L")
E = TypeVar("E", bound=Exception)

#: tries of one order (or booking) when its offer keeps moving to another region while it is
#: placed, or the IP spaces it must lock keep growing
ATTEMPTS = 3


class RegionMoved(Exception):
    """The offer, read under the locks, is in another region than the one locked."""

    def __init__(self, region_id: int) -> None:
        super().__init__(region_id)
        self.region_id = region_id


async def offer_region(
    uow_factory: UnitOfWorkFactory,
    read: Callable[[UnitOfWork], Awaitable[VmTemplate | CustomPricing | None]],
) -> int | None:
    """The region an offer (template or custom pricing) sells in; None when there is none.

    Read in a short transaction of its own: a plain read in the order's transaction would
    fix its MariaDB snapshot before the region lock is held. The order checks the offer's
    region again under the lock (`check_region`).
    """
    async with uow_factory() as uow:
        offer = await read(uow)
    return None if offer is None else offer.region_id


async def lock_order(uow: UnitOfWork, user_id: int, region_id: int | None) -> None:
    """Take the buyer's row lock, then the region's, before the order's first plain read.

    The user lock makes one user's orders count their never-paid VMs one after another
    (D25); the region lock makes orders placing in one region read the hosts' free room one
    after another, so two buyers never both take a host's last room. Both are locking reads,
    which MariaDB answers without fixing the transaction's snapshot: the snapshot is taken
    by the first plain read after them, so it sees every order committed before. On SQLite
    the user lock already holds the database write lock. One lock order everywhere:
    subscription, then user, then region, then IP spaces (ascending id). Orders take user
    then region (IP-range orders: user then spaces); spawning takes subscription then
    region; a booking that places or grows a VM takes the first three, one that gives IP
    ranges subscription, user and spaces (its account credit locks the user's row); nothing
    takes a lock before one listed earlier, so none waits on another in a cycle.
    None: no region to lock (the offer is missing; the order fails on it).
    """
    await uow.users.lock(user_id)
    if region_id is not None:
        await uow.regions.lock(region_id)


def check_region(locked: int | None, offered: int) -> None:
    """`RegionMoved` when the offer was moved to another region after `offer_region` read it."""
    if locked != offered:
        raise RegionMoved(offered)


async def _with_locks(
    locks: L,
    attempt: Callable[[L], Awaitable[T]],
    told: type[E],
    wanted: Callable[[E], L],
    exhausted: Callable[[], Exception],
) -> T:
    """Run `attempt` with `locks`, again with the locks it says it wants (`told`) instead,
    at most `ATTEMPTS` times; then `exhausted()` is raised."""
    for _ in range(ATTEMPTS):
        try:
            return await attempt(locks)
        except told as err:
            locks = wanted(err)
    raise exhausted()


async def under_region_lock(
    region_id: int | None,
    attempt: Callable[[int | None], Awaitable[T]],
    exhausted: Callable[[], Exception] = lambda: NoHostAvailable(NO_HOST),
) -> T:
    """Run `attempt` (one transaction locking `region_id`: an order, or a payment's booking
    that places a VM) again in the region it found instead, while that keeps moving; after
    `ATTEMPTS` tries, `exhausted()` is raised (an order finds no host)."""
    return await _with_locks(
        region_id, attempt, RegionMoved, lambda moved: moved.region_id, exhausted
    )


async def under_space_locks(
    spaces: frozenset[int], attempt: Callable[[frozenset[int]], Awaitable[T]]
) -> T:
    """Run `attempt` (one transaction locking the IP spaces `spaces` before its first plain
    read: an IP-range order, or a payment's booking that gives ranges) again with the spaces
    it found it must lock (`SpacesToLock`), while they keep changing (a space overlapping
    another added meanwhile); after `ATTEMPTS` tries, `StorageBusy` (the caller retries)."""
    return await _with_locks(
        spaces, attempt, SpacesToLock, lambda needed: needed.space_ids, StorageBusy
    )
