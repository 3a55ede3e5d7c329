"""The in-memory database: tables of frozen records, published whole on commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

import attrs

from domain.errors import DuplicateKey

R = TypeVar("R")
Key = Any


class MemoryDatabase:
    """Committed state plus the lock that serialises units of work like row locks would."""

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}
        self.sequences: dict[str, int] = {}
        self.lock = asyncio.Lock()


class Table(dict[Key, Any]):
    """A table's rows; datetimes are stored in whole seconds, as the SQL TIMESTAMP columns do."""

    def __setitem__(self, key: Key, value: Any) -> None:
        super().__setitem__(key, whole_seconds(value))


def whole_seconds(value: Any) -> Any:
    """The record (or datetime) with every datetime field truncated to whole seconds."""
    if isinstance(value, datetime):
        return value.replace(microsecond=0)
    if not attrs.has(type(value)):
        return value
    changes = {
        f.name: v.replace(microsecond=0)
        for f in attrs.fields(type(value))
        if isinstance(v := getattr(value, f.name), datetime) and v.microsecond
    }
    return attrs.evolve(value, **changes) if changes else value


class Snapshot:
    """A private working copy of the tables; records are frozen, so copying dicts suffices."""

    def __init__(self, db: MemoryDatabase) -> None:
        self.tables = {name: Table(rows) for name, rows in db.tables.items()}
        self.sequences = dict(db.sequences)

    def publish(self, db: MemoryDatabase) -> None:
        db.tables = self.tables
        db.sequences = self.sequences

    def rows(self, table: str) -> Table:
        return self.tables.setdefault(table, Table())

    def next_id(self, table: str) -> int:
        self.sequences[table] = self.sequences.get(table, 0) + 1
        return self.sequences[table]


class Repo:
    """Base of every memory repository: finds the unit of work's current snapshot."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def _rows(self, table: str) -> dict[Key, Any]:
        return self._snapshot().rows(table)

    def _insert(self, table: str, record: R) -> R:
        new_id = self._snapshot().next_id(table)
        stored = evolve(record, id=new_id)
        self._rows(table)[new_id] = stored
        return stored


class RecordRepo(Repo, Generic[R]):
    """add/get/update/list_all over one table of records with integer ids."""

    table = ""
    #: the table's unique keys (field names) and what a duplicate's 409 says
    unique: tuple[tuple[str, ...], ...] = ()
    duplicate_message = ""

    async def add(self, record: R) -> R:
        self._check_unique(record)
        return self._insert(self.table, record)

    async def get(self, record_id: int) -> R | None:
        found: R | None = self._rows(self.table).get(record_id)
        return found

    async def update(self, record: R) -> None:
        rows = self._rows(self.table)
        key = record.id  # type: ignore[attr-defined]
        if key in rows:
            self._check_unique(record)
            rows[key] = record

    async def get_many(self, record_ids: Collection[int]) -> dict[int, R]:
        rows = self._rows(self.table)
        return {i: rows[i] for i in sorted(set(record_ids)) if i in rows}

    async def list_all(self) -> list[R]:
        return self._where()

    async def remove(self, record_id: int) -> bool:
        return self._rows(self.table).pop(record_id, None) is not None

    def _set(self, record_id: int, live_only: bool = False, **changes: Any) -> bool:
        """Change only these fields of the row (SQL's `UPDATE … SET col = …`); False when
        there is no such row, or, with `live_only`, it is soft-deleted."""
        rows = self._rows(self.table)
        row = rows.get(record_id)
        if row is None or (live_only and row.deleted):
            return False
        rows[record_id] = evolve(row, **changes)
        return True

    def _check_unique(self, record: R) -> None:
        """DuplicateKey when another row has the same values of a unique key (as SQL does)."""
        for fields in self.unique:
            values = [getattr(record, f) for f in fields]
            for other in self._rows(self.table).values():
                if other.id != record.id and [getattr(other, f) for f in fields] == values:  # type: ignore[attr-defined]
                    raise DuplicateKey(self.duplicate_message)

    def _where(self, *predicates: Callable[[R], bool]) -> list[R]:
        """Rows matching every predicate, ascending id."""
        return [
            r for _, r in sorted(self._rows(self.table).items()) if all(p(r) for p in predicates)
        ]


def evolve(record: R, **changes: Any) -> R:
    """`attrs.evolve`, typed for records mypy does not recognise as attrs classes."""
    changed: R = attrs.evolve(cast(Any, record), **changes)
    return changed


def page_of(rows: Iterable[R], limit: int, offset: int) -> tuple[list[R], int]:
    """Slice a fully ordered list the way LIMIT/OFFSET does, with the total count."""
    everything = list(rows)
    return everything[offset : offset + limit], len(everything)
