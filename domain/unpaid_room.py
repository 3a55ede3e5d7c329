"""How much host room never-paid VM orders may hold: per user, and per host (D25)."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from fractions import Fraction

import attrs

from domain.errors import DomainError
from domain.model import GIB

#: what one user's never-paid orders may hold together by default: one large VPS (the biggest
#: custom VM of the shipped demo catalogue), so a new customer can still order any size a
#: small shop sells, while one free key can no longer take a whole host.
DEFAULT_UNPAID_CPU = 16
DEFAULT_UNPAID_MEMORY = 64 * GIB
DEFAULT_UNPAID_DISK = 1024 * GIB
#: the part of each host's CPU, memory and disk that never-paid orders together may hold by
#: default, in percent: the other half is always left for paid work.
DEFAULT_HOST_SHARE_PERCENT = 50
DEFAULT_HOST_SHARE = Fraction(DEFAULT_HOST_SHARE_PERCENT, 100)


class UnpaidRoomExceeded(DomainError):
    """A new order would take the buyer's never-paid orders past what they may hold together
    (`max-unpaid-room`, 422 as D25's other caps): nothing is reserved or written."""


@attrs.frozen(kw_only=True)
class UnpaidRoom:
    """The limits on the room never-paid orders hold (D25); None: that limit is off.

    Why both. A new order is never paid yet, and Nostr keys cost nothing, so before these
    limits one free order sized like a whole host took all of it for its payment window
    (about 70 minutes), and the never-paid cleanup let the same key do it again every hour:
    paying customers got "no capacity".

    - `cpu`, `memory`, `disk` (bytes): what one user's never-paid orders may hold together,
      the order being placed included. It bounds what one key can take, wherever it orders.
    - `host_share`: the part of each host's capacity (size × load factor) never-paid orders
      of all users together may hold. New keys are free, so only this bounds many keys at
      once: whatever they order, the rest of every host stays for paid work (a paying
      customer's upgrade, a late payment that places its order again), which is never held
      to the share. It also caps one unpaid order at that part of the largest host, and
      the addresses never-paid orders are promised at that part of their region's IPv4
      pool (`app.billing.address_room.ipv4_left`).
    """

    cpu: int | None = DEFAULT_UNPAID_CPU
    memory: int | None = DEFAULT_UNPAID_MEMORY
    disk: int | None = DEFAULT_UNPAID_DISK
    host_share: Fraction | None = DEFAULT_HOST_SHARE

    @property
    def budgeted(self) -> bool:
        """Whether any per-user limit is on (else the user's orders need not be summed)."""
        return (self.cpu, self.memory, self.disk) != (None, None, None)


#: the limits a shop gets unless it configures others
DEFAULT_UNPAID_ROOM = UnpaidRoom()
#: every limit off: what never-paid orders hold is bounded by `max-unpaid-vms` alone
NO_UNPAID_ROOM_LIMITS = UnpaidRoom(cpu=None, memory=None, disk=None, host_share=None)


@attrs.frozen
class Held:
    """CPU, memory bytes and disk bytes a set of VMs holds."""

    cpu: int = 0
    memory: int = 0
    disk: int = 0


_TENTH = Decimal("0.1")


def _gib(size: int) -> str:
    """A size in bytes as GiB: whole, else rounded up to one decimal (a size just past a
    limit never reads as the limit)."""
    whole, part = divmod(size, GIB)
    if part == 0:
        return f"{whole} GiB"
    return f"{(Decimal(size) / GIB).quantize(_TENTH, ROUND_CEILING)} GiB"


def check_unpaid_budget(limits: UnpaidRoom, held: Held, wanted: Held) -> None:
    """Refuse (`UnpaidRoomExceeded`) an order that would take what the buyer's never-paid
    orders hold (`held`) past a per-user limit; the message names each limit it passes."""
    over = []
    if limits.cpu is not None and held.cpu + wanted.cpu > limits.cpu:
        over.append(f"{held.cpu + wanted.cpu} vCPUs (at most {limits.cpu})")
    if limits.memory is not None and held.memory + wanted.memory > limits.memory:
        over.append(f"{_gib(held.memory + wanted.memory)} memory (at most {_gib(limits.memory)})")
    if limits.disk is not None and held.disk + wanted.disk > limits.disk:
        over.append(f"{_gib(held.disk + wanted.disk)} disk (at most {_gib(limits.disk)})")
    if over:
        raise UnpaidRoomExceeded(
            f"Your unpaid orders would hold {', '.join(over)}: pay for an order, choose a"
            " smaller VM, or wait until unpaid orders are removed (one hour after ordering)"
        )


def within_host_share(held: int, wanted: int, capacity: Fraction, share: Fraction | None) -> bool:
    """Whether never-paid orders holding `held` of a capacity may take `wanted` more of it:
    together at most `share` of the capacity (None: no share applies, a paid placement)."""
    return share is None or held + wanted <= capacity * share
