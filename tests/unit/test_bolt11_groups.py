"""The dev rail's BOLT11 regrouping by integers equals bech32's bit-by-bit `convert_bits`."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adapters.lightning.bolt11 import _groups, _packed
from domain.bech32 import convert_bits


@given(st.binary(max_size=700))
def test_bytes_regroup_into_five_bit_groups_as_convert_bits(raw: bytes) -> None:
    assert _groups(raw) == convert_bits(raw, 8, 5, pad=True)


@given(st.lists(st.integers(min_value=0, max_value=31), max_size=1200))
def test_five_bit_groups_pack_into_bytes_as_convert_bits(groups: list[int]) -> None:
    assert _packed(groups) == bytes(convert_bits(groups, 5, 8, pad=True))
