"""The one bech32: BIP-173 vectors, round trips, and the bit regrouping NIP-19/BOLT11 use."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from domain import bech32

#: valid strings from BIP-173's test vectors
VALID = [
    "A12UEL5L",
    "a12uel5l",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]


@pytest.mark.parametrize("text", VALID)
def test_bip173_valid_strings_decode_and_encode_back(text: str) -> None:
    hrp, data = bech32.decode(text)
    assert bech32.encode(hrp, data) == text.lower()


@pytest.mark.parametrize(
    "text",
    [
        "A1G7SGD8",  # checksum over upper-case data
        "10a06t8",  # empty prefix
        "1qzzfhee",  # empty prefix
        "a12UEL5L",  # mixed case
        "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxx",  # last character changed
        "pzry9x0s0muk",  # no separator
        "x1b4n0q5v",  # invalid data character
        "li1dgmt3",  # checksum too short
    ],
)
def test_bip173_invalid_strings_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        bech32.decode(text)


@given(
    hrp=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10),
    data=st.lists(st.integers(0, 31), max_size=120),
)
def test_encode_then_decode_is_identity(hrp: str, data: list[int]) -> None:
    assert bech32.decode(bech32.encode(hrp, data)) == (hrp, data)


@given(st.binary(max_size=64))
def test_bytes_survive_regrouping_into_five_bits(raw: bytes) -> None:
    groups = bech32.convert_bits(raw, 8, 5, pad=True)
    assert all(0 <= g < 32 for g in groups)
    assert bech32.strict_bytes(groups) == raw
    assert bytes(bech32.convert_bits(groups, 5, 8, pad=False)) == raw


def test_non_zero_padding_is_refused() -> None:
    groups = bech32.convert_bits(b"\xff", 8, 5, pad=True)  # 8 bits → two groups, 2 bits pad
    with pytest.raises(ValueError, match="padding"):
        bech32.strict_bytes([*groups[:-1], groups[-1] | 1])


@example([31] * 2046, "lnbcrt1u")  # at and past the length the masks cover
@example([17] * 2050, "a")
@example(list(range(32)) * 66, "npub")
@given(
    st.lists(st.integers(min_value=0, max_value=31), max_size=2200),
    st.sampled_from(["a", "lnbcrt1u", "npub", "x" * 20]),
)
def test_encode_int_equals_encode_of_the_groups(groups: list[int], hrp: str) -> None:
    """The integer form (BOLT11's dev encoder) writes what the per-group form writes, past
    the length its precomputed masks cover too."""
    value = 0
    for group in groups:
        value = value << 5 | group
    assert bech32.encode_int(hrp, value, len(groups)) == bech32.encode(hrp, groups)
