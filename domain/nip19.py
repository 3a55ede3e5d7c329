"""NIP-19 public keys: `npub1…` (bech32, BIP-173) or 64 hex digits → the 32-byte x-only key."""

from __future__ import annotations

import re

from domain import bech32

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def _decode_npub(text: str) -> bytes:
    hrp, values = bech32.decode(text)
    if hrp != "npub":
        raise ValueError("not an npub")
    try:
        key = bech32.strict_bytes(values)
    except ValueError:
        raise ValueError("npub has non-zero padding") from None
    if len(key) != 32:
        raise ValueError("npub does not hold a 32-byte key")
    return key


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
    return bech32.encode("npub", bech32.convert_bits(pubkey, 8, 5, pad=True))
