"""Bech32 (BIP-173): 5-bit data with a prefix and checksum, as NIP-19 and BOLT11 use it."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Final

CHARSET: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR: Final = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _generator_sum(top: int) -> int:
    out = 0
    for i, generator in enumerate(_GENERATOR):
        if (top >> i) & 1:
            out ^= generator
    return out


#: the generators to XOR in for each value of the five bits shifted out (one lookup per
#: value instead of five tests: a dev invoice's checksum was a tenth of a renewal's CPU)
_GENERATOR_SUMS: Final = tuple(_generator_sum(top) for top in range(32))


def _polymod(values: Iterable[int]) -> int:
    check = 1
    sums = _GENERATOR_SUMS
    for value in values:
        check = (check & 0x1FFFFFF) << 5 ^ value ^ sums[check >> 25]
    return check


def _step(check: int) -> int:
    """One `_polymod` step with a zero value."""
    return (check & 0x1FFFFFF) << 5 ^ _GENERATOR_SUMS[check >> 25]


#: how many 5-bit groups `_polymod_int` takes (a BOLT11 invoice has at most some 1 400)
_MASK_GROUPS: Final = 2048


@functools.cache
def _checksum_masks() -> tuple[int, ...]:
    """The checksum is linear (XOR) in its input bits, and what one bit adds depends only on
    how far from the end it stands: bit j of the checksum is the parity of the input bits
    under mask j. Built on first use (~30 ms): bit 5k+b of the input (k groups from the end)
    is under mask j when `_step` applied k times to 1 << b sets bit j."""
    size = 5 * _MASK_GROUPS
    rows = [bytearray(b"0" * size) for _ in range(30)]
    contributions = [1 << b for b in range(5)]
    for k in range(_MASK_GROUPS):
        for b, check in enumerate(contributions):
            at = size - 1 - (5 * k + b)
            while check:
                low = check & -check
                rows[low.bit_length() - 1][at] = 0x31  # "1"
                check ^= low
        contributions = [_step(check) for check in contributions]
    return tuple(int(row, 2) for row in rows)


def _polymod_int(value: int, count: int) -> int:
    """`_polymod` of the `count` 5-bit groups of `value` (first group highest), by parities:
    no Python step per group. The start value 1 is one more group in front."""
    if count + 1 > _MASK_GROUPS:
        return _polymod([value >> 5 * i & 31 for i in range(count - 1, -1, -1)])
    bits = 1 << 5 * count | value
    out = 0
    for j, mask in enumerate(_checksum_masks()):
        out |= ((bits & mask).bit_count() & 1) << j
    return out


@functools.cache
def _spread_masks() -> tuple[int, ...]:
    """For `_symbols`: mask t covers the groups whose index has bit t set, where they stand
    once the groups of higher index bits have moved (built on first use, ~10 ms)."""
    masks = []
    for t in range(_MASK_GROUPS.bit_length() - 1):
        mask = 0
        for i in range(_MASK_GROUPS):
            if i >> t & 1:
                mask |= 31 << 5 * i + 3 * (i & ~((2 << t) - 1))
        masks.append(mask)
    return tuple(masks)


#: 5-bit values, one a byte, to bech32 characters
_VALUES_TO_CHARSET: Final = bytes.maketrans(bytes(range(32)), CHARSET.encode())


def _symbols(value: int, count: int) -> str:
    """The bech32 characters of the `count` 5-bit groups of `value`: each group moved from
    5 bits apart to 8 (group i by 3i, in one step per bit of i, all groups at once), then
    one byte a character."""
    if count > _MASK_GROUPS:
        return "".join(CHARSET[value >> 5 * i & 31] for i in range(count - 1, -1, -1))
    masks = _spread_masks()
    for t in range(max(count - 1, 1).bit_length() - 1, -1, -1):
        moving = value & masks[t]
        value = (value ^ moving) | moving << (3 << t)
    return value.to_bytes(count, "big").translate(_VALUES_TO_CHARSET).decode("ascii")


def encode_int(hrp: str, value: int, count: int) -> str:
    """`encode(hrp, data)` for the `count` 5-bit groups of `value` (the first group in its
    highest bits) and an ASCII `hrp`, with no Python step per group (a dev invoice has some
    400): the checksum by parities (`_polymod_int`), the characters by `_symbols`."""
    expanded = _hrp_expand(hrp)
    head = 0
    for group in expanded:
        head = head << 5 | group
    total = len(expanded) + count + 6
    polymod = _polymod_int((head << 5 * count | value) << 30, total) ^ 1
    return hrp + "1" + _symbols(value << 30 | polymod, count + 6)


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def encode(hrp: str, data: Sequence[int]) -> str:
    """`hrp1…` with the checksum appended (no length limit, as BOLT11 needs)."""
    polymod = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in [*data, *checksum])


def decode(text: str) -> tuple[str, list[int]]:
    """Prefix and 5-bit data (checksum removed); ValueError for mixed case or a bad string."""
    if text != text.lower() and text != text.upper():
        raise ValueError("mixed-case bech32 string")
    text = text.lower()
    sep = text.rfind("1")
    if sep < 1 or len(text) - sep < 7:
        raise ValueError("not a bech32 string")
    hrp = text[:sep]
    try:
        data = [CHARSET.index(c) for c in text[sep + 1 :]]
    except ValueError:
        raise ValueError("invalid bech32 character") from None
    if _polymod([*_hrp_expand(hrp), *data]) != 1:
        raise ValueError("bad bech32 checksum")
    return hrp, data[:-6]


def convert_bits(data: Iterable[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int]:
    """Regroup `from_bits`-bit values into `to_bits`-bit ones; `pad` zero-fills the last one."""
    acc = bits = 0
    out: list[int] = []
    mask = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & mask)
    if pad and bits:
        out.append((acc << (to_bits - bits)) & mask)
    return out


def strict_bytes(data: Sequence[int]) -> bytes:
    """5-bit data back to bytes; ValueError when the padding is not zero or too long."""
    acc = bits = 0
    out = bytearray()
    for value in data:
        acc, bits = (acc << 5) | value, bits + 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or acc & ((1 << bits) - 1):
        raise ValueError("non-zero padding")
    return bytes(out)
