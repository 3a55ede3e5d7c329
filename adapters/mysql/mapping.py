"""Record ⇄ row mapping for SQLAlchemy Core tables, with `ENC:` columns sealed at the boundary."""

from __future__ import annotations

import functools
import keyword
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

import attrs
from sqlalchemy import Column, ColumnElement, Dialect, Label, Table

from domain.model import ResourceLimits
from domain.unreadable import Unreadable
from ports.secrets import SecretBox, SecretBoxError

R = TypeVar("R")
ENC_PREFIX = "ENC:"
_LIMIT_FIELDS = tuple(f.name for f in attrs.fields(ResourceLimits))
#: how many unreadable cells a process remembers having reported (then it starts afresh)
_REPORTED_MAX = 4096

log = logging.getLogger("lnvps.storage.secrets")


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
        part = part_at(mapper, start)
        records.append(part.read(row))
        start = part.end
    return records


def result_processors(
    columns: Iterable[ColumnElement[Any]], dialect: Dialect
) -> list[Callable[[Any], Any] | None]:
    """What SQLAlchemy's execution runs on each column's raw value on `dialect` (None: the
    value as the driver gives it), for reads that convert raw rows themselves."""
    return [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]


@functools.lru_cache(maxsize=256)
def part_at(mapper: Mapper[Any], at: int) -> Part[Any]:
    """The `Part` of `mapper`'s columns from position `at`, made once per mapper and place."""
    return Part(mapper, at)


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
        #: the unreadable cells (column, row id) already reported to the operator
        self._reported: set[tuple[str, object]] = set()
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
            values[name] = self.open(values[name], name, values.get("id"))
        if self.nested_limits:
            limits = {name: values.pop(name) for name in _LIMIT_FIELDS}
            values["limits"] = ResourceLimits(**limits)
        return self.cls(**values)

    def seal(self, plaintext: str | Unreadable | None) -> str | None:
        """Always encrypt (D28), even a value that happens to start with `ENC:`: records hold
        plain text, so such a value is user input and must not be stored as if sealed. An
        `Unreadable` value is written back as it was read, never lost to another write of
        its row."""
        if plaintext is None:
            return None
        if isinstance(plaintext, Unreadable):
            return plaintext.stored
        return self.box.encrypt(plaintext)

    def open(self, stored: str | None, column: str, row_id: object) -> str | Unreadable | None:
        """Decrypt an `ENC:` value; anything else is plain text from before encryption (it is
        sealed on its row's next write). One that cannot be decrypted (a lost or rotated key,
        a corrupt value) is `Unreadable`, so the rest of its row still loads; the operator
        is told once per process and cell."""
        if stored is None or not stored.startswith(ENC_PREFIX):
            return stored
        try:
            return self.box.decrypt(stored)
        except SecretBoxError as err:
            self._report(column, row_id, err)
            return Unreadable(stored)

    def _report(self, column: str, row_id: object, err: SecretBoxError) -> None:
        if isinstance(row_id, bytes):
            row_id = row_id.hex()  # a payment's id
        if (column, row_id) in self._reported:
            return
        if len(self._reported) >= _REPORTED_MAX:
            self._reported.clear()
        self._reported.add((column, row_id))
        log.error(
            "OPERATOR: %s.%s of row %s cannot be decrypted (%s); it reads as unreadable (no"
            " usable value) and is kept as stored until it is set again",
            self.table.name,
            column,
            row_id,
            err,
        )


class Part(Generic[R]):
    """One table's columns in the joined select, labelled `<table>__<column>`, read back by
    position (`at` is where its columns start in the row)."""

    def __init__(self, mapper: Mapper[R], at: int) -> None:
        self.mapper = mapper
        prefix = f"{mapper.table.name}__"
        self.names = tuple(c.name for c in mapper.columns)
        self.labels = [(name, f"{prefix}{name}") for name in self.names]
        self.start = at
        self.end = at + len(self.names)
        self.id_at = at + self.names.index("id")
        self._read = _compiled_reader(self) or self._read_by_values

    def columns(self) -> list[Label[Any]]:
        table = self.mapper.table
        return [table.c[name].label(label) for name, label in self.labels]

    def read(self, row: Sequence[Any]) -> R | None:
        """The record, or None when the outer join found no row."""
        if row[self.id_at] is None:
            return None
        return self._read(row)

    def _read_by_values(self, row: Sequence[Any]) -> R:
        return self.mapper.from_values(
            dict(zip(self.names, row[self.start : self.end], strict=True))
        )


def _compiled_reader(part: Part[R]) -> Callable[[Sequence[Any]], R] | None:
    """`Mapper.from_values` of the part's columns as one generated call (issue 10: the
    record built straight from the row's positions, no dict of values built and consumed
    first): the same keyword arguments, the same `open` of each secret (with the row's id)
    and the same nested limits. None where a name could not be a keyword (`from_values`)."""
    mapper = part.mapper
    names = part.names
    limits = set(_LIMIT_FIELDS) if mapper.nested_limits else set()
    if not all(n.isidentifier() and not keyword.iskeyword(n) for n in names):
        return None
    if not mapper.encrypted <= set(names) or not limits <= set(names):
        return None  # `from_values` would raise on the missing value: keep it so
    row_id = f"row[{part.id_at}]"
    args = []
    for i, name in enumerate(names, start=part.start):
        if name in limits:
            continue
        value = f"row[{i}]"
        if name in mapper.encrypted:
            value = f"_open({value}, {name!r}, {row_id})"
        args.append(f"{name}={value}")
    if limits:
        nested = ", ".join(f"{n}=row[{part.start + names.index(n)}]" for n in _LIMIT_FIELDS)
        args.append(f"limits=_limits({nested})")
    source = f"def read(row):\n    return _cls({', '.join(args)})\n"
    scope: dict[str, Any] = {"_cls": mapper.cls, "_open": mapper.open, "_limits": ResourceLimits}
    # the source names only the mapper's own attrs fields (checked above) and row positions
    exec(compile(source, f"<record reader {mapper.table.name}@{part.start}>", "exec"), scope)
    reader: Callable[[Sequence[Any]], R] = scope["read"]
    return reader
