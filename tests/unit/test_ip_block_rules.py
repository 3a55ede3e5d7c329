"""Blocks of an IP space: free space, the block to give, whether orders fit (IPv4 and IPv6)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from ipaddress import IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.ip_blocks import Block, best_block, fits, free_blocks, overlaps, parse_block

SPACE = ipaddress.ip_network("198.51.100.0/24")


def nets(*cidrs: str) -> list[Block]:
    return [ipaddress.ip_network(c) for c in cidrs]


def test_free_space_is_the_space_without_the_taken_blocks_in_largest_aligned_blocks() -> None:
    free = free_blocks(SPACE, nets("198.51.100.64/26", "203.0.113.0/24", "2001:db8::/32"))
    assert sorted(map(str, free)) == ["198.51.100.0/26", "198.51.100.128/25"]
    assert free_blocks(SPACE, nets("198.51.100.0/23")) == []  # a taken block holding the space
    assert free_blocks(SPACE, []) == [SPACE]


def test_the_block_given_comes_from_the_tightest_free_block() -> None:
    """Taking a /26 from the lone free /26 keeps the /25 whole for a /25 order."""
    free = free_blocks(SPACE, nets("198.51.100.64/26"))
    assert str(best_block(free, 26)) == "198.51.100.0/26"
    assert str(best_block(free, 25)) == "198.51.100.128/25"
    assert best_block(free, 24) is None
    assert str(best_block(free, 28)) == "198.51.100.0/28"


def test_ipv6_blocks_are_counted_without_listing_them() -> None:
    space = ipaddress.ip_network("2001:db8::/32")
    taken = nets("2001:db8::/48", "2001:db8:ff00::/40")
    free = free_blocks(space, taken)
    block = best_block(free, 48)
    assert str(block) == "2001:db8:1::/48"
    # 65 536 /48s, less the one taken and the 256 of the /40
    assert fits(free, [48] * 65_279) and not fits(free, [48] * 65_280)
    assert fits(free, [34, 34]) and not fits(free, [33])  # each /33 holds a taken block
    low = ipaddress.ip_network("::/32")  # an address that is a small number stays IPv6
    assert best_block([low], 48) == ipaddress.ip_network("::/48")


def test_fits_counts_alignment_not_just_addresses() -> None:
    """A /25 and a /26 are free (192 addresses) but no /24 and not two /25s."""
    free = free_blocks(SPACE, nets("198.51.100.64/26"))
    assert fits(free, [25, 26]) and not fits(free, [25, 25]) and not fits(free, [24])
    assert fits(free, [26, 27, 27, 26]) and not fits(free, [26, 27, 27, 26, 32])


def test_parse_and_overlap_never_mix_versions() -> None:
    assert parse_block("not a network") is None
    assert str(parse_block(" 198.51.100.7/24 ")) == "198.51.100.0/24"
    v4, v6 = nets("0.0.0.0/0", "::/0")
    assert not overlaps(v4, v6) and overlaps(v4, nets("198.51.100.0/24")[0])


def _placeable(space: Block, taken: Sequence[Block], prefixes: list[int]) -> bool:
    """Brute force: some choice of disjoint free blocks for every order."""
    if not prefixes:
        return True
    prefix, rest = prefixes[0], prefixes[1:]
    for block in space.subnets(new_prefix=prefix):
        if not any(overlaps(block, t) for t in taken) and _placeable(space, [*taken, block], rest):
            return True
    return False


SMALL = ipaddress.ip_network("10.0.0.0/28")
blocks = st.builds(
    lambda prefix, n: list(SMALL.subnets(new_prefix=prefix))[n % 2 ** (prefix - 28)],
    st.integers(28, 32),
    st.integers(0, 15),
)


@settings(max_examples=300)
@given(st.lists(blocks, max_size=4), st.lists(st.integers(29, 32), max_size=4))
def test_fits_is_exact_and_the_block_given_never_breaks_a_fit(
    drawn: list[IPv4Network], prefixes: list[int]
) -> None:
    # ranges in use never overlap: keep the outermost of nested ones
    taken = [b for b in set(drawn) if not any(o != b and b.subnet_of(o) for o in drawn)]
    free = free_blocks(SMALL, taken)
    assert fits(free, prefixes) == _placeable(SMALL, taken, prefixes)
    if prefixes and fits(free, prefixes):
        block = best_block(free, prefixes[0])
        assert block is not None and not any(overlaps(block, t) for t in taken)
        assert fits(free_blocks(SMALL, [*taken, block]), prefixes[1:])
