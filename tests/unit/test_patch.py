"""Partial updates: UNSET keeps a field, None clears it, a value sets it."""

from __future__ import annotations

import attrs

from domain.patch import UNSET, Maybe, given, unset_if_none


@attrs.frozen(kw_only=True)
class _Patch:
    name: Maybe[str] = UNSET
    note: Maybe[str | None] = UNSET


def test_only_given_fields_are_changes() -> None:
    assert given(_Patch()) == {}
    assert given(_Patch(name="x")) == {"name": "x"}
    assert given(_Patch(note=None)) == {"note": None}  # an explicit null clears


def test_a_null_that_means_keep_becomes_unset() -> None:
    assert unset_if_none(None) is UNSET
    assert unset_if_none(0) == 0
    assert repr(UNSET) == "UNSET"
