"""Shapes shared by every storage port: pages and the generic record repository."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

import attrs

T = TypeVar("T")
R = TypeVar("R")


@attrs.frozen
class Page(Generic[T]):
    """One page of a list plus the total number of matching rows (COUNT(*) before LIMIT)."""

    items: list[T]
    total: int


class Records(Protocol[R]):
    """Add/get/update of one kind of record with an integer id.

    `add` takes a record whose id is 0 and returns it with the id storage assigned.
    `update` overwrites every column of the row with the record's id (unknown id: no-op).
    """

    async def add(self, record: R) -> R: ...

    async def get(self, record_id: int) -> R | None: ...

    async def update(self, record: R) -> None: ...


class Catalogue(Records[R], Protocol[R]):
    """A small table an operator curates: it may be listed whole, ordered by id."""

    async def list_all(self) -> list[R]: ...


class Removable(Protocol):
    """Hard delete of one row by id, for the catalogue rows an operator may remove."""

    async def remove(self, record_id: int) -> bool:
        """Delete the row; True when one was deleted. Callers check references first (a row
        still referenced is refused by the SQL foreign keys)."""
        ...
