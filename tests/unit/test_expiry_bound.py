"""An admin-set expiry lies from the Unix epoch to MAX_EXPIRY_AHEAD_MONTHS after now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidInput
from domain.limits import MIN_EXPIRY, check_expiry

NOW = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
LATEST = datetime(2036, 2, 28, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


@pytest.mark.parametrize("ok", [None, MIN_EXPIRY, NOW, LATEST])
def test_an_expiry_inside_the_bounds_is_accepted(ok: datetime | None) -> None:
    check_expiry(ok, NOW)


@pytest.mark.parametrize(
    "bad", [MIN_EXPIRY - TICK, LATEST + TICK, datetime(9999, 1, 1, tzinfo=UTC)]
)
def test_an_expiry_outside_the_bounds_is_refused(bad: datetime) -> None:
    with pytest.raises(InvalidInput, match="years ahead"):
        check_expiry(bad, NOW)
