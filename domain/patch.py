"""Partial updates: a field left `UNSET` is kept, None clears it, any other value sets it."""

from __future__ import annotations

from enum import Enum
from typing import Any, Final, TypeAlias, TypeVar

import attrs

T = TypeVar("T")


class Unset(Enum):
    """A PATCH field that was not sent (as opposed to an explicit JSON null)."""

    UNSET = "unset"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET
#: a patch field: `Maybe[int]` is an int or UNSET; `Maybe[int | None]` may also clear.
Maybe: TypeAlias = T | Unset


def given(patch: Any) -> dict[str, Any]:
    """The fields of an attrs patch that were given (not UNSET), by name."""
    return {
        name: value
        for name, value in attrs.asdict(patch, recurse=False).items()
        if value is not UNSET
    }


def unset_if_none(value: T | None) -> Maybe[T]:
    """A field whose null means "keep" (not "clear"): None → UNSET."""
    return UNSET if value is None else value
