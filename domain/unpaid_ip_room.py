"""How many addresses never-paid IP-range orders may hold: per user, and per IP space (D25)."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

import attrs

from domain.errors import DomainError

#: what one user's never-paid IP-range orders may hold together by default, as the prefix of
#: one block of that many addresses: a /24 of IPv4 (the smallest block routed on the
#: internet, what most buyers want) and a /44 of IPv6 (sixteen /48s; IPv6 is plentiful).
#: A shop selling larger blocks raises them, as one selling VMs larger than `UnpaidRoom`.
DEFAULT_UNPAID_IPV4_PREFIX = 24
DEFAULT_UNPAID_IPV6_PREFIX = 44
#: the part of each IP space never-paid orders together may hold by default, in percent
DEFAULT_SPACE_SHARE_PERCENT = 50
DEFAULT_SPACE_SHARE = Fraction(DEFAULT_SPACE_SHARE_PERCENT, 100)

_BITS = {4: 32, 6: 128}


class UnpaidIpRoomExceeded(DomainError):
    """A new IP-range order would take the buyer's never-paid orders past the addresses they
    may hold together (`max-unpaid-ip-room`, 422 as D25's other caps): nothing is written."""


def block_size(version: int, prefix: int) -> int:
    """How many addresses a `/prefix` block of IP `version` (4 or 6) holds (a prefix past
    the family's length, from a space since changed, counts one)."""
    return 1 << max(0, _BITS[version] - prefix)


@attrs.frozen(kw_only=True)
class UnpaidIpRoom:
    """The limits on the addresses never-paid IP-range orders hold (D25); None: that limit
    is off.

    Why. An order holds its blocks for its payment window (about 70 minutes) so that it is
    given them when paid in time; Nostr keys cost nothing and the never-paid cleanup frees
    the order's place every hour, so before these limits one free key ordering every block
    of a space in one request kept every paying customer out of it, hour after hour.

    - `ipv4`, `ipv6`: a prefix: one user's never-paid orders may hold together at most as
      many addresses of that family as one block of that size, the new order included.
    - `space_share`: the part of each IP space's addresses never-paid orders of all users
      together may hold, so that many keys cannot fill it either; the rest is sold only to
      payers (a payment is always given a free block, held to the space alone). It also
      caps one unpaid order at that part of its space: a space sold whole as one block
      needs the share at 100 (off).
    """

    ipv4: int | None = DEFAULT_UNPAID_IPV4_PREFIX
    ipv6: int | None = DEFAULT_UNPAID_IPV6_PREFIX
    space_share: Fraction | None = DEFAULT_SPACE_SHARE

    def prefix(self, version: int) -> int | None:
        """The per-user limit of IP `version` (4 or 6) as a prefix (None: no limit)."""
        return self.ipv4 if version == 4 else self.ipv6

    def budget(self, version: int) -> int | None:
        """The addresses of IP `version` one user's never-paid orders may hold (None: any)."""
        prefix = self.prefix(version)
        return None if prefix is None else block_size(version, prefix)


#: the limits a shop gets unless it configures others
DEFAULT_UNPAID_IP_ROOM = UnpaidIpRoom()
#: every limit off: what never-paid orders hold is bounded by `max-unpaid-subscriptions` alone
NO_UNPAID_IP_LIMITS = UnpaidIpRoom(ipv4=None, ipv6=None, space_share=None)


def check_unpaid_ip_budget(
    limits: UnpaidIpRoom, held: Mapping[int, int], wanted: Mapping[int, int]
) -> None:
    """Refuse (`UnpaidIpRoomExceeded`) an order that would take the addresses the buyer's
    never-paid orders hold (`held`, by IP version) past the per-user limit of a family it
    asks for (`wanted`); the message names each limit passed."""
    over = []
    for version in sorted(wanted):
        budget = limits.budget(version)
        total = held.get(version, 0) + wanted[version]
        if budget is not None and wanted[version] > 0 and total > budget:
            one = f"one /{limits.prefix(version)}"
            over.append(f"{total} IPv{version} addresses (at most {budget}: {one})")
    if over:
        raise UnpaidIpRoomExceeded(
            f"Your unpaid orders would hold {', '.join(over)}: pay for an order, choose a"
            " smaller range, or wait until unpaid orders are removed (one hour after ordering)"
        )


def within_space_share(held: int, wanted: int, size: int, share: Fraction | None) -> bool:
    """Whether never-paid orders holding `held` addresses of a space of `size` may take
    `wanted` more: together at most `share` of it (None: no share)."""
    return share is None or held + wanted <= size * share


def orderable_alone(limits: UnpaidIpRoom, version: int, prefix: int, space_size: int) -> bool:
    """Whether one new order of a `/prefix` block (IP `version`) from a space of
    `space_size` addresses can pass `limits` at all, by a buyer holding no unpaid order in
    an empty space: every new order is unpaid, so a larger block is always refused (422)
    and the catalogue does not offer it."""
    budget = limits.budget(version)
    wanted = block_size(version, prefix)
    fits_budget = budget is None or wanted <= budget
    return fits_budget and within_space_share(0, wanted, space_size, limits.space_share)
