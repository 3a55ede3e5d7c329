"""The dev clock's offset file: moved by one process, read by another."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.clock.offset import OffsetClock, parse_duration


def test_a_fresh_clock_runs_on_real_time(tmp_path: Path) -> None:
    clock = OffsetClock(tmp_path / "clock.json")
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)
    assert clock.now().tzinfo is UTC


def test_advancing_is_seen_by_another_instance_and_accumulates(tmp_path: Path) -> None:
    path = tmp_path / "clock.json"
    OffsetClock(path).advance(timedelta(days=2))
    OffsetClock(path).advance(timedelta(hours=1))
    reader = OffsetClock(path)
    assert reader.offset() == timedelta(days=2, hours=1)
    assert reader.now() - datetime.now(UTC) > timedelta(days=2, minutes=59)


def test_the_clock_never_goes_backwards(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="forward"):
        OffsetClock(tmp_path / "c.json").advance(timedelta(seconds=-1))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("3h", 10_800), ("2d", 172_800), ("1w", 604_800)],
)
def test_durations_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "d", "2.5d", "-1d", "abc"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
