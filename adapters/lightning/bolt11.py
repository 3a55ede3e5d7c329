"""Minimal BOLT11 encoder (bech32, signed with a well-known dev key) for the dev rail."""

from __future__ import annotations

import hashlib
from typing import Final

from coincurve import PrivateKey

from domain.bech32 import convert_bits
from domain.bech32 import decode as bech32_decode
from domain.bech32 import encode_int as bech32_encode_int

#: The dev node's key: public knowledge, so a dev invoice can never be mistaken for a real one.
DEV_NODE_KEY: Final = PrivateKey(hashlib.sha256(b"lnvps dev lightning node").digest())
REGTEST_PREFIX: Final = "lnbcrt"
_TAG_PAYMENT_HASH: Final = 1
_TAG_DESCRIPTION: Final = 13
_TAG_EXPIRY: Final = 6
_TAG_PAYMENT_SECRET: Final = 16
_TAG_MIN_FINAL_CLTV: Final = 24
_TAG_FEATURES: Final = 5
_MAX_FIELD_GROUPS: Final = 1023
_FEATURES: Final = (1 << 8) | (1 << 14)  # var_onion_optin, payment_secret (required)


def _bits(groups: int) -> int:
    return groups * 5


def _byte_groups(raw: bytes) -> tuple[int, int]:
    """`raw` as 5-bit groups, zero-padded: (their value as one integer, how many)."""
    count = -(-len(raw) * 8 // 5)
    return int.from_bytes(raw, "big") << (_bits(count) - len(raw) * 8), count


def _int_count(value: int) -> int:
    """How many 5-bit groups write `value` (one at least)."""
    return max(1, -(-value.bit_length() // 5))


class _Data:
    """BOLT11 data part built as one integer of 5-bit groups (no Python step per group)."""

    def __init__(self, value: int, count: int) -> None:
        self.value, self.count = value, count

    def field(self, tag: int, value: int, count: int) -> None:
        """A tagged field: tag, its length in groups (two groups), the groups."""
        if count > _MAX_FIELD_GROUPS:
            raise ValueError("BOLT11 field too long")
        head = tag << 10 | count
        self.value = (self.value << 15 | head) << _bits(count) | value
        self.count += 3 + count

    def packed(self) -> bytes:
        """The groups as bytes, the last zero-padded (what the signature covers)."""
        size = -(-_bits(self.count) // 8)
        return (self.value << (size * 8 - _bits(self.count))).to_bytes(size, "big")


def amount_hrp(amount_msat: int) -> str:
    """The BOLT11 amount part: the shortest of m/u/n/p multipliers that is exact."""
    for unit, msat in (("m", 100_000_000), ("u", 100_000), ("n", 100)):
        if amount_msat % msat == 0:
            return f"{amount_msat // msat}{unit}"
    return f"{amount_msat * 10}p"


def _truncate_utf8(text: str, limit: int) -> bytes:
    raw = text.encode("utf-8")
    return raw if len(raw) <= limit else raw[:limit].decode("utf-8", "ignore").encode("utf-8")


def encode_dev_invoice(
    *,
    payment_hash: bytes,
    payment_secret: bytes,
    amount_msat: int,
    description: str,
    timestamp: int,
    expiry_seconds: int,
    key: PrivateKey = DEV_NODE_KEY,
) -> str:
    """A signed regtest (`lnbcrt`) BOLT11 string; description is truncated to one field."""
    hrp = REGTEST_PREFIX + amount_hrp(amount_msat)
    data = _Data(timestamp, 7)
    data.field(_TAG_PAYMENT_HASH, *_byte_groups(payment_hash))
    data.field(_TAG_PAYMENT_SECRET, *_byte_groups(payment_secret))
    data.field(_TAG_DESCRIPTION, *_byte_groups(_truncate_utf8(description, 639)))
    for tag, value in (
        (_TAG_EXPIRY, expiry_seconds),
        (_TAG_MIN_FINAL_CLTV, 80),
        (_TAG_FEATURES, _FEATURES),
    ):
        data.field(tag, value, _int_count(value))
    digest = hashlib.sha256(hrp.encode("ascii") + data.packed())
    signature = key.sign_recoverable(digest.digest(), hasher=None)  # r || s || recovery id
    signed, count = _byte_groups(signature)  # 65 bytes: 104 groups, no padding
    return bech32_encode_int(hrp, data.value << _bits(count) | signed, data.count + count)


def payment_hash_of(bolt11: str) -> bytes:
    """The payment hash (`p` field) of a BOLT11 string; ValueError if there is none."""
    _, data = bech32_decode(bolt11.strip())
    fields, at = data[7:-104], 0
    while at + 3 <= len(fields):
        tag, length = fields[at], fields[at + 1] << 5 | fields[at + 2]
        value = fields[at + 3 : at + 3 + length]
        at += 3 + length
        if tag == _TAG_PAYMENT_HASH and length == 52:
            return bytes(convert_bits(value, 5, 8, pad=False)[:32])
    raise ValueError("BOLT11 invoice has no payment hash")
