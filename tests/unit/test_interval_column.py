"""`interval_count_column`: the metadata's interval count as the reuse test reads it, or NULL."""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any

import pytest

from adapters.mysql.interval_column import interval_count_column, stored_interval_count
from adapters.mysql.types import JsonText
from domain.subscription import metadata_interval_count


class _Count(IntEnum):
    THREE = 3


#: (domain metadata, the column): only a top-level integer "intervals" of an object gives one
CASES: list[tuple[Any, int | None]] = [
    ({"intervals": 3}, 3),
    ({"intervals": 120, "price": {"amount": 2}}, 120),
    ({"price": {"amount": 2}, "intervals": 7}, 7),
    ({"intervals": _Count.THREE}, 3),
    ({"intervals": 0}, 0),  # never reused (out of 1..120), but an integer: no count matches
    ({"intervals": -2}, -2),
    ({"intervals": 2**31 - 1}, 2**31 - 1),
    ({"intervals": 2**31}, None),  # beyond the column's INT
    ({"intervals": -(2**31) - 1}, None),
    (None, None),  # counts as 1 for the test, but no key: NULL (read by its text)
    ({}, None),
    ({"other": 3}, None),
    ({"INTERVALS": 3}, None),
    ({"nested": {"intervals": 3}}, None),
    ({"intervals": True}, None),
    ({"intervals": False}, None),
    ({"intervals": 3.0}, None),
    ({"intervals": "3"}, None),
    ({"intervals": None, "amount_msat": 2}, None),
    ({"intervals": [3]}, None),
    ([3], None),
    (3, None),
    (True, None),
    ('{"intervals":4}', 4),  # a JSON string: the test decodes it once more
    ('{"intervals": 4, "x": 1}', 4),
    ('{"intervals":"4"}', None),
    ('{"intervals":4,"intervals":5}', 5),  # Python's parser keeps the last
    ('"{\\"intervals\\":4}"', None),  # decoded twice by the test: still a string
    ("{not json", None),
    ("", None),
    ("3", None),
]


@pytest.mark.parametrize(("metadata", "column"), CASES)
def test_the_column_holds_the_top_level_integer_intervals_or_null(
    metadata: Any, column: int | None
) -> None:
    assert interval_count_column(metadata) == column


@pytest.mark.parametrize(("metadata", "column"), CASES)
def test_a_row_with_the_column_set_is_one_the_reuse_test_reads_that_count_of(
    metadata: Any, column: int | None
) -> None:
    """What the column promises: written from a record's metadata, read back as the reads
    decode it, the reuse test reads the column's count (when it is one it may accept), and
    never a count for a row the column leaves NULL unless the key is missing (default 1)."""
    stored = JsonText().process_bind_param(metadata, None)  # type: ignore[arg-type]
    read_back = None if stored is None else json.loads(stored)
    count = metadata_interval_count(read_back)
    if column is not None and 1 <= column <= 120:
        assert count == column
    else:
        assert count is None or column is None
    assert stored_interval_count(stored) == column


@pytest.mark.parametrize(
    ("raw", "column"),
    [
        ('{"intervals":3}', 3),
        (b'{"intervals":3}', 3),
        ('"{\\"intervals\\":3}"', 3),  # the JSON string holds a JSON object
        ('{"intervals":3,}', None),  # not JSON: the reads keep it as text, never reused
        (b"\xff{", None),
        (None, None),
        ('{"intervals":3,"x":NaN}', 3),
    ],
)
def test_a_stored_text_gives_the_column_of_what_the_reads_decode_it_to(
    raw: str | bytes | None, column: int | None
) -> None:
    assert stored_interval_count(raw) == column
