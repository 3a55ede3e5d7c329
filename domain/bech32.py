"""Bech32 (BIP-173): 5-bit data with a prefix and checksum, as NIP-19 and BOLT11 use it."""

from __future__ import annotations

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
