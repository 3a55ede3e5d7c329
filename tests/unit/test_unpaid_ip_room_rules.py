"""D25's limits on never-paid IP-range orders: the per-user address budget, the space share."""

from __future__ import annotations

from fractions import Fraction

import pytest

from domain.unpaid_ip_room import (
    DEFAULT_UNPAID_IP_ROOM,
    NO_UNPAID_IP_LIMITS,
    UnpaidIpRoom,
    UnpaidIpRoomExceeded,
    block_size,
    check_unpaid_ip_budget,
    within_space_share,
)


def test_block_sizes_per_family() -> None:
    assert (block_size(4, 24), block_size(4, 32), block_size(6, 48)) == (256, 1, 1 << 80)
    assert block_size(4, 40) == 1  # a prefix past the family (a space since changed)


def test_the_defaults_are_one_ipv4_24_one_ipv6_44_and_half_of_each_space() -> None:
    room = DEFAULT_UNPAID_IP_ROOM
    assert (room.budget(4), room.budget(6), room.space_share) == (256, 1 << 84, Fraction(1, 2))
    assert (NO_UNPAID_IP_LIMITS.budget(4), NO_UNPAID_IP_LIMITS.budget(6)) == (None, None)


def test_an_order_that_fills_the_budget_exactly_passes() -> None:
    check_unpaid_ip_budget(DEFAULT_UNPAID_IP_ROOM, {4: 128, 6: 0}, {4: 128, 6: 1 << 80})


def test_an_order_past_either_family_names_each_limit() -> None:
    limits = UnpaidIpRoom(ipv4=24, ipv6=48)
    with pytest.raises(UnpaidIpRoomExceeded) as refused:
        check_unpaid_ip_budget(limits, {4: 256, 6: 1 << 80}, {4: 1, 6: 1 << 80})
    assert str(refused.value).startswith(
        "Your unpaid orders would hold 257 IPv4 addresses (at most 256: one /24), "
        f"{2 << 80} IPv6 addresses (at most {1 << 80}: one /48): pay for an order"
    )


def test_a_family_not_asked_for_is_not_judged() -> None:
    """Holding past the IPv6 limit (the limit lowered since) does not refuse an IPv4 order."""
    check_unpaid_ip_budget(UnpaidIpRoom(ipv4=24, ipv6=48), {6: 1 << 90}, {4: 256})


@pytest.mark.parametrize(
    ("held", "wanted", "share", "ok"),
    [(256, 256, Fraction(1, 2), True), (256, 257, Fraction(1, 2), False), (1024, 1, None, True)],
)
def test_the_space_share(held: int, wanted: int, share: Fraction | None, ok: bool) -> None:
    assert within_space_share(held, wanted, 1024, share) is ok
