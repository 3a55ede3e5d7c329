"""Id lists for `IN (…)` cut into pieces of a bounded size, one statement each."""

from __future__ import annotations

from collections.abc import Collection, Iterator

#: ids per `IN (…)` list: each id is a bound parameter, and drivers and servers cap the
#: parameters of one statement (SQLite 32 766, MariaDB 65 535) and the packet size
IN_LIST_SIZE = 1000


def id_chunks(ids: Collection[int], size: int | None = None) -> Iterator[list[int]]:
    """The distinct ids, ascending, in lists of at most `size` (`IN_LIST_SIZE` as it is when
    called, so a test can make the lists small); none for no ids."""
    size = IN_LIST_SIZE if size is None else size
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]
