"""`subscription_payment.interval_count`: a payment's interval count, kept beside its metadata."""

from __future__ import annotations

import json
from typing import Any

from domain.credit import metadata_dict
from domain.subscription import INTERVALS_KEY

#: the column's range (a signed 32-bit INT on MariaDB): any other integer is left NULL
_LOWEST, _HIGHEST = -(2**31), 2**31 - 1


def interval_count_column(metadata: Any) -> int | None:
    """The value of `subscription_payment.interval_count` for a payment whose domain
    `metadata` is this: the metadata's top-level `"intervals"` when that is an integer (not
    a bool) of the column's range, else NULL.

    The renewal's reuse lookup narrows a subscription's pending payments by this column
    instead of reading each row's metadata text: a row whose column is `n` holds
    `{"intervals": n, …}` as the reuse test reads it back (`metadata_interval_count`: the
    stored JSON decoded, and a JSON string decoded once more), so it is kept for a count of
    `n` and passed over for any other. NULL says nothing (no key, null, a float, a string,
    not an object, text that is not JSON, a row written by something else): such a row goes
    through the metadata text test as before, so a NULL is never wrong, only slower.
    """
    count = metadata_dict(metadata).get(INTERVALS_KEY)
    if isinstance(count, bool) or not isinstance(count, int):
        return None
    return count if _LOWEST <= count <= _HIGHEST else None


def stored_interval_count(raw: str | bytes | None) -> int | None:
    """`interval_count_column` of a row whose metadata column holds `raw`, decoded as the
    reads decode it (JSON; text that is not JSON stays text): r12's back-fill."""
    if raw is None:
        return None
    try:
        return interval_count_column(json.loads(raw))
    except ValueError:
        return interval_count_column(
            raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        )
