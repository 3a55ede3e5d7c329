"""Our engines' compiled-statement cache: a statement built once per process is found by
the identity of its cache key, without hashing that key at every execution (issue 10)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.util import LRUCache

S = TypeVar("S")
#: SQLAlchemy's default `query_cache_size`
CACHE_SIZE = 500

#: the cache keys of the statements kept for the life of the process (`prebuilt`), by id;
#: held here, so an id in it always names that key
_KEPT: dict[int, tuple[Any, ...]] = {}


def keep(statement: S) -> S:
    """`statement` lives as long as the process: find its compiled forms by identity.

    SQLAlchemy looks a statement's compiled form up by a key that holds its whole structure
    as nested tuples (memoized on the statement), and hashes that key at every execution:
    ~15-75 µs for a renewal's pricing reads on this machine, a new invoice's largest single
    cost in SQLAlchemy. A statement it cannot cache (no key) is left as it is. Returns
    `statement`."""
    found = getattr(statement, "_generate_cache_key", None)
    key = found() if found is not None else None
    if key is not None:
        _KEPT[id(key.key)] = key.key
    return statement


class StatementCache(LRUCache[Any, Any]):
    """SQLAlchemy's LRU cache of compiled statements, which first looks a kept statement's
    key up by the identity of its parts (dialect, statement structure); a key is only ever
    answered with the compiled form stored for an equal key (compared whole)."""

    def __init__(self, capacity: int = CACHE_SIZE) -> None:
        super().__init__(capacity)
        self._kept: dict[tuple[int, int], list[tuple[tuple[Any, ...], Any]]] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        if type(key) is tuple and len(key) > 1:
            for known, compiled in self._kept.get((id(key[0]), id(key[1])), ()):
                if known == key:  # the structure compares by identity first: no walk
                    return compiled
        return super().get(key, default)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        if type(key) is tuple and len(key) > 1 and _KEPT.get(id(key[1])) is key[1]:
            self._kept.setdefault((id(key[0]), id(key[1])), []).append((key, value))

    def clear(self) -> None:
        super().clear()
        self._kept.clear()
