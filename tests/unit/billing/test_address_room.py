"""How many IPv4 addresses a range gives VMs: the count orders and payments judge by is
exactly the number of addresses the build can pick from it."""

from __future__ import annotations

import pytest

from app.billing.address_room import assignable_ipv4
from app.worker.addresses import candidates
from domain.model import IpRange


def _range(cidr: str, gateway: str = "", *, full: bool = False) -> IpRange:
    return IpRange(id=1, cidr=cidr, enabled=True, region_id=1, gateway=gateway, use_full_range=full)


@pytest.mark.parametrize(
    ("cidr", "gateway", "full", "count"),
    [
        ("10.0.0.0/29", "10.0.0.1/29", False, 5),  # network, broadcast, gateway kept back
        ("10.0.0.0/29", "10.0.0.1", True, 7),  # routed: only the gateway kept back
        ("10.0.0.0/29", "", False, 6),  # no gateway
        ("10.0.0.0/29", "192.0.2.1", False, 6),  # a gateway outside the range takes none
        ("10.0.0.0/29", "10.0.0.0", False, 6),  # nor the network address, never given
        ("10.0.0.0/30", "10.0.0.1", False, 1),
        ("10.0.0.0/31", "", False, 2),  # point-to-point: both usable
        ("10.0.0.0/31", "10.0.0.0", False, 1),
        ("10.0.0.7/32", "", False, 1),
        ("10.0.0.0/24", "10.0.0.1/24", False, 253),
        (" 10.0.0.5/29 ", "10.0.0.1", False, 5),  # host bits and spaces as the build reads
    ],
)
def test_the_count_is_what_the_build_can_pick(
    cidr: str, gateway: str, full: bool, count: int
) -> None:
    ip_range = _range(cidr, gateway, full=full)
    assert assignable_ipv4(ip_range) == count
    assert len(list(candidates(ip_range))) == count


@pytest.mark.parametrize("cidr", ["2001:db8::/64", "not a range", ""])
def test_ipv6_and_unreadable_ranges_give_no_ipv4_address(cidr: str) -> None:
    assert assignable_ipv4(_range(cidr)) == 0
