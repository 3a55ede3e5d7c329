"""The dev rail's BOLT11 encoder, built on integers, equals the group-by-group construction."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.lightning.bolt11 import DEV_NODE_KEY, amount_hrp, encode_dev_invoice
from domain.bech32 import convert_bits, encode


def _int_groups(value: int) -> list[int]:
    """Big-endian 5-bit groups, as few as write it (one at least)."""
    groups = [value & 31]
    while value >> 5:
        value >>= 5
        groups.insert(0, value & 31)
    return groups


def _field(tag: int, groups: list[int]) -> list[int]:
    return [tag, len(groups) >> 5, len(groups) & 31, *groups]


def _reference(
    payment_hash: bytes, secret: bytes, amount: int, memo: bytes, timestamp: int, expiry: int
) -> str:
    """BOLT11 as the spec spells it, one 5-bit group at a time."""
    hrp = "lnbcrt" + amount_hrp(amount)
    data = convert_bits(timestamp.to_bytes(5, "big"), 8, 5, pad=True)[-7:]
    data += _field(1, convert_bits(payment_hash, 8, 5, pad=True))
    data += _field(16, convert_bits(secret, 8, 5, pad=True))
    data += _field(13, convert_bits(memo, 8, 5, pad=True))
    data += _field(6, _int_groups(expiry))
    data += _field(24, _int_groups(80))
    data += _field(5, _int_groups((1 << 8) | (1 << 14)))
    signed = hrp.encode("ascii") + bytes(convert_bits(data, 5, 8, pad=True))
    signature = DEV_NODE_KEY.sign_recoverable(hashlib.sha256(signed).digest(), hasher=None)
    return encode(hrp, data + convert_bits(signature, 8, 5, pad=True))


@settings(max_examples=60)
@given(
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.integers(min_value=1, max_value=10**15),
    st.binary(max_size=639),
    st.integers(min_value=0, max_value=2**35 - 1),
    st.integers(min_value=1, max_value=2**40),
)
def test_the_dev_invoice_is_the_spec_construction(
    payment_hash: bytes, secret: bytes, amount: int, memo: bytes, timestamp: int, expiry: int
) -> None:
    text = memo.decode("utf-8", "replace").encode("utf-8")[:639].decode("utf-8", "ignore")
    found = encode_dev_invoice(
        payment_hash=payment_hash,
        payment_secret=secret,
        amount_msat=amount,
        description=text,
        timestamp=timestamp,
        expiry_seconds=expiry,
    )
    expected = _reference(payment_hash, secret, amount, text.encode("utf-8"), timestamp, expiry)
    assert found == expected
