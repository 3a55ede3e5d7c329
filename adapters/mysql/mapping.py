"""Record ⇄ row mapping for SQLAlchemy Core tables, with `ENC:` columns sealed at the boundary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

import attrs
from sqlalchemy import Column, Table

from domain.model import ResourceLimits
from ports.secrets import SecretBox

R = TypeVar("R")
ENC_PREFIX = "ENC:"
_LIMIT_FIELDS = tuple(f.name for f in attrs.fields(ResourceLimits))


def evolve(record: R, **changes: Any) -> R:
    """`attrs.evolve`, typed for records mypy does not recognise as attrs classes."""
    changed: R = attrs.evolve(cast(Any, record), **changes)
    return changed


def joined_records(
    row: Sequence[Any], mappers: Sequence[Mapper[Any]], *, start: int = 0
) -> list[Any]:
    """The records of a joined row that holds each mapper's columns in turn (by position,
    from `start`): None for a table whose `id` is NULL (an outer join that found nothing)."""
    records: list[Any] = []
    for mapper in mappers:
        names = [c.name for c in mapper.columns]
        values = dict(zip(names, row[start : start + len(names)], strict=True))
        records.append(None if values["id"] is None else mapper.from_values(values))
        start += len(names)
    return records


class Mapper(Generic[R]):
    """Maps one record class onto one table: same-named columns, nested limits, secrets."""

    def __init__(
        self,
        table: Table,
        cls: type[R],
        box: SecretBox,
        encrypted: Iterable[str] = (),
    ) -> None:
        self.table = table
        self.cls = cls
        self.box = box
        self.encrypted = frozenset(encrypted)
        names = [f.name for f in attrs.fields(cast(Any, cls))]
        self.nested_limits = "limits" in names
        wanted = set(names) | (set(_LIMIT_FIELDS) if self.nested_limits else set())
        self.columns: list[Column[Any]] = [c for c in table.columns if c.name in wanted]

    def to_row(self, record: R, *, exclude: Iterable[str] = ("id",)) -> dict[str, Any]:
        values = attrs.asdict(cast(Any, record), recurse=False)
        if self.nested_limits:
            limits = values.pop("limits")
            values.update({name: getattr(limits, name) for name in _LIMIT_FIELDS})
        for name in self.encrypted:
            values[name] = self.seal(values.get(name))
        skip = set(exclude)
        return {c.name: values[c.name] for c in self.columns if c.name not in skip}

    def from_row(self, row: Mapping[str, Any]) -> R:
        return self.from_values({c.name: row[c.name] for c in self.columns})

    def from_values(self, values: dict[str, Any]) -> R:
        """The record of one row's values by column name (`values` is consumed)."""
        for name in self.encrypted:
            values[name] = self.open(values[name])
        if self.nested_limits:
            limits = {name: values.pop(name) for name in _LIMIT_FIELDS}
            values["limits"] = ResourceLimits(**limits)
        return self.cls(**values)

    def seal(self, plaintext: str | None) -> str | None:
        """Always encrypt (D28), even a value that happens to start with `ENC:`: records hold
        plain text, so such a value is user input and must not be stored as if sealed."""
        if plaintext is None:
            return None
        return self.box.encrypt(plaintext)

    def open(self, stored: str | None) -> str | None:
        """Decrypt an `ENC:` value; anything else is plain text from before encryption (it is
        sealed on its row's next write)."""
        if stored is None or not stored.startswith(ENC_PREFIX):
            return stored
        return self.box.decrypt(stored)
