"""Minimal BOLT11 encoder (bech32, signed with a well-known dev key) for the dev rail."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final

from coincurve import PrivateKey

_CHARSET: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR: Final = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
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


def _polymod(values: Iterable[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(_GENERATOR):
            if (top >> i) & 1:
                check ^= generator
    return check


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def bech32_encode(hrp: str, data: Sequence[int]) -> str:
    """Bech32 (BIP-173 checksum, no length limit, as BOLT11 uses it)."""
    polymod = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in [*data, *checksum])


def bech32_decode(text: str) -> tuple[str, list[int]]:
    """Split a bech32 string into prefix and 5-bit data (checksum removed); ValueError if bad."""
    text = text.lower()
    sep = text.rfind("1")
    if sep < 1 or len(text) - sep < 7:
        raise ValueError("not a bech32 string")
    hrp = text[:sep]
    try:
        data = [_CHARSET.index(c) for c in text[sep + 1 :]]
    except ValueError:
        raise ValueError("invalid bech32 character") from None
    if _polymod([*_hrp_expand(hrp), *data]) != 1:
        raise ValueError("bad bech32 checksum")
    return hrp, data[:-6]


def _convert_bits(data: Iterable[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int]:
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


def _int_groups(value: int, min_groups: int = 1) -> list[int]:
    groups: list[int] = []
    while value or len(groups) < min_groups:
        groups.insert(0, value & 31)
        value >>= 5
    return groups


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
    data += _field(_TAG_PAYMENT_HASH, _convert_bits(payment_hash, 8, 5, pad=True))
    data += _field(_TAG_PAYMENT_SECRET, _convert_bits(payment_secret, 8, 5, pad=True))
    memo = _truncate_utf8(description, 639)
    data += _field(_TAG_DESCRIPTION, _convert_bits(memo, 8, 5, pad=True))
    data += _field(_TAG_EXPIRY, _int_groups(expiry_seconds))
    data += _field(_TAG_MIN_FINAL_CLTV, _int_groups(80))
    data += _field(_TAG_FEATURES, _int_groups(_FEATURES))
    digest = hashlib.sha256(hrp.encode("ascii") + bytes(_convert_bits(data, 5, 8, pad=True)))
    signature = key.sign_recoverable(digest.digest(), hasher=None)  # r || s || recovery id
    return bech32_encode(hrp, data + _convert_bits(signature, 8, 5, pad=True))


def payment_hash_of(bolt11: str) -> bytes:
    """The payment hash (`p` field) of a BOLT11 string; ValueError if there is none."""
    _, data = bech32_decode(bolt11.strip())
    fields, at = data[7:-104], 0
    while at + 3 <= len(fields):
        tag, length = fields[at], fields[at + 1] << 5 | fields[at + 2]
        value = fields[at + 3 : at + 3 + length]
        at += 3 + length
        if tag == _TAG_PAYMENT_HASH and length == 52:
            return bytes(_convert_bits(value, 5, 8, pad=False)[:32])
    raise ValueError("BOLT11 invoice has no payment hash")
