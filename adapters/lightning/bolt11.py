"""Minimal BOLT11 encoder (bech32, signed with a well-known dev key) for the dev rail."""

from __future__ import annotations

import hashlib
from typing import Final

from coincurve import PrivateKey

from domain.bech32 import convert_bits
from domain.bech32 import decode as bech32_decode
from domain.bech32 import encode as bech32_encode

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


def _int_groups(value: int, min_groups: int = 1) -> list[int]:
    groups: list[int] = []
    while value or len(groups) < min_groups:
        groups.insert(0, value & 31)
        value >>= 5
    return groups


def _groups(raw: bytes) -> list[int]:
    """`convert_bits(raw, 8, 5, pad=True)` through one integer (no per-bit Python loop)."""
    count = -(-len(raw) * 8 // 5)
    value = int.from_bytes(raw, "big") << (count * 5 - len(raw) * 8)
    return [value >> shift & 31 for shift in range(count * 5 - 5, -1, -5)]


def _packed(groups: list[int]) -> bytes:
    """`bytes(convert_bits(groups, 5, 8, pad=True))`: the groups as one integer, zero-padded."""
    value = 0
    for group in groups:
        value = value << 5 | group
    size = -(-len(groups) * 5 // 8)
    return (value << (size * 8 - len(groups) * 5)).to_bytes(size, "big")


def _field(tag: int, groups: list[int]) -> list[int]:
    if len(groups) > _MAX_FIELD_GROUPS:
        raise ValueError("BOLT11 field too long")
    return [tag, *_int_groups(len(groups), 2), *groups]


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
    data = _int_groups(timestamp, 7)
    data += _field(_TAG_PAYMENT_HASH, _groups(payment_hash))
    data += _field(_TAG_PAYMENT_SECRET, _groups(payment_secret))
    memo = _truncate_utf8(description, 639)
    data += _field(_TAG_DESCRIPTION, _groups(memo))
    data += _field(_TAG_EXPIRY, _int_groups(expiry_seconds))
    data += _field(_TAG_MIN_FINAL_CLTV, _int_groups(80))
    data += _field(_TAG_FEATURES, _int_groups(_FEATURES))
    digest = hashlib.sha256(hrp.encode("ascii") + _packed(data))
    signature = key.sign_recoverable(digest.digest(), hasher=None)  # r || s || recovery id
    return bech32_encode(hrp, data + _groups(signature))


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
