"""Sequential IP allocation: gateway, network and broadcast skipped unless the range is routed."""

from __future__ import annotations

import pytest

from app.worker.addresses import NoIpv4Available, candidates, pick
from domain.model import IpRange


def _range(cidr: str, gateway: str, *, full: bool = False, id: int = 1) -> IpRange:
    return IpRange(
        id=id, cidr=cidr, enabled=True, region_id=1, gateway=gateway, use_full_range=full
    )


def test_candidates_skip_network_gateway_and_broadcast() -> None:
    assert [str(a) for a in candidates(_range("10.0.0.0/29", "10.0.0.1/29"))] == [
        f"10.0.0.{n}" for n in range(2, 7)
    ]


def test_full_range_hands_out_network_and_broadcast_but_never_the_gateway() -> None:
    found = [str(a) for a in candidates(_range("10.0.0.0/30", "10.0.0.1", full=True))]
    assert found == ["10.0.0.0", "10.0.0.2", "10.0.0.3"]


def test_pick_takes_the_first_free_address_of_the_lowest_range() -> None:
    ranges = [_range("10.0.1.0/29", "10.0.1.1", id=2), _range("10.0.0.0/29", "10.0.0.1", id=1)]
    [chosen] = pick(ranges, {"10.0.0.2", "10.0.0.3"}, vm_id=7)
    assert (chosen.ip, chosen.ip_range_id, chosen.vm_id) == ("10.0.0.4", 1, 7)


def test_pick_moves_to_the_next_range_and_fails_without_any_ipv4() -> None:
    ranges = [_range("10.0.0.0/30", "10.0.0.1", id=1), _range("10.0.1.0/30", "10.0.1.1", id=2)]
    [chosen] = pick(ranges, {"10.0.0.2"}, vm_id=1)
    assert chosen.ip == "10.0.1.2"
    with pytest.raises(NoIpv4Available):
        pick(ranges, {"10.0.0.2", "10.0.1.2"}, vm_id=1)
    with pytest.raises(NoIpv4Available):
        pick([_range("2001:db8::/64", "2001:db8::1")], set(), vm_id=1)
