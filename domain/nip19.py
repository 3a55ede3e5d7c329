"""NIP-19 public keys: `npub1…` (bech32, BIP-173) or 64 hex digits → the 32-byte x-only key."""

from __future__ import annotations

import re

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GEN):
            chk ^= gen if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _decode_npub(text: str) -> bytes:
    if text != text.lower() and text != text.upper():
        raise ValueError("mixed-case npub")
    text = text.lower()
    hrp, sep, data = text.rpartition("1")
    if not sep or hrp != "npub" or len(data) < 6:
        raise ValueError("not an npub")
    try:
        values = [_CHARSET.index(c) for c in data]
    except ValueError:
        raise ValueError("invalid bech32 character in npub") from None
    if _polymod(_hrp_expand(hrp) + values) != 1:
        raise ValueError("bad npub checksum")
    acc, bits, out = 0, 0, bytearray()
    for value in values[:-6]:
        acc, bits = (acc << 5) | value, bits + 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or acc & ((1 << bits) - 1):
        raise ValueError("npub has non-zero padding")
    if len(out) != 32:
        raise ValueError("npub does not hold a 32-byte key")
    return bytes(out)


def parse_pubkey(text: str) -> bytes:
    """A Nostr public key given as `npub1…` or 64 hex digits; ValueError otherwise.

    Whether the key is on the curve is not checked: a user row is keyed by these bytes.
    """
    text = text.strip()
    if _HEX64.fullmatch(text):
        return bytes.fromhex(text)
    try:
        return _decode_npub(text)
    except ValueError as exc:
        raise ValueError(
            f"not a Nostr public key (npub1… or 64 hex digits): {text[:80]!r} ({exc})"
        ) from None


def npub(pubkey: bytes) -> str:
    """The NIP-19 `npub1…` of a 32-byte x-only key."""
    acc, bits, values = 0, 0, []
    for byte in pubkey:
        acc, bits = (acc << 8) | byte, bits + 8
        while bits >= 5:
            bits -= 5
            values.append((acc >> bits) & 31)
    if bits:
        values.append((acc << (5 - bits)) & 31)
    checksum = _polymod(_hrp_expand("npub") + values + [0] * 6) ^ 1
    values += [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]
    return "npub1" + "".join(_CHARSET[v] for v in values)
