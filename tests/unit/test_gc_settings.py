"""The suite's garbage-collector settings (`tests/conftest.py`): what collection imported is
frozen, and the oldest generation is collected every 100 younger collections."""

from __future__ import annotations

import gc


def test_collection_left_the_imported_heap_frozen_and_full_collections_rarer() -> None:
    assert gc.get_freeze_count() > 100_000  # the app, its libraries and every test module
    assert gc.get_threshold()[2] == 100
