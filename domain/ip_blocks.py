"""Aligned address blocks of an IP space: what is free, which block to give, whether orders fit."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network

Block = IPv4Network | IPv6Network


def parse_block(cidr: str) -> Block | None:
    """The network a stored CIDR names (host bits cleared); None when it names none."""
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        return None


def overlaps(a: Block, b: Block) -> bool:
    """Whether the two blocks share an address (never across IP versions)."""
    return a.version == b.version and a.overlaps(b)


def free_blocks(space: Block, taken: Iterable[Block]) -> list[Block]:
    """The space without the taken blocks, as its largest free aligned blocks.

    Blocks are CIDR networks, so two of them either nest or do not meet: each taken block
    inside a free one splits it into the halves around it (`address_exclude`), and every
    piece left is as large as alignment allows.
    """
    free: list[Block] = [space]
    for block in taken:
        if not overlaps(space, block):
            continue
        kept: list[Block] = []
        for piece in free:
            if not overlaps(piece, block):
                kept.append(piece)
            elif piece.prefixlen < block.prefixlen:  # the taken block lies inside the piece
                kept.extend(piece.address_exclude(block))  # type: ignore[arg-type]
            # else the piece lies inside the taken block: nothing of it is free
        free = kept
    return free


def best_block(free: Iterable[Block], prefix: int) -> Block | None:
    """The `/prefix` block to give: the first one of the smallest free block that holds it.

    Taking it from the tightest free block keeps the larger free blocks whole for larger
    orders (a buddy allocator's best fit). With aligned blocks this choice never makes a set
    of orders that fitted before stop fitting (`fits`), so an order that held room is always
    given a block, whatever order the payments come in. None: no free block is that large.
    """
    holding = [piece for piece in free if piece.prefixlen <= prefix]
    if not holding:
        return None
    tightest = min(holding, key=lambda p: (-p.prefixlen, int(p.network_address)))
    return ipaddress.ip_network((tightest.network_address, prefix))


def fits(free: Iterable[Block], prefixes: Iterable[int]) -> bool:
    """Whether blocks of all these prefix lengths can be given from the free blocks at once.

    Largest first, each from the tightest free block that holds it: for aligned blocks of
    powers of two this succeeds exactly when some placement exists. Counted on prefix
    lengths only, so a large IPv6 space costs no more than a small one.
    """
    lengths = sorted(piece.prefixlen for piece in free)
    for prefix in sorted(prefixes):
        holding = [n for n in lengths if n <= prefix]
        if not holding:
            return False
        tightest = max(holding)
        lengths.remove(tightest)
        # splitting a /n for a /p leaves one free block of each length n+1 … p
        lengths.extend(range(tightest + 1, prefix + 1))
    return True
