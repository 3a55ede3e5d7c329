"""What a settlement met after an admin's completion is: the race window and old records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.admin_completion import (
    RACE_MARGIN,
    AdminCompletion,
    NodeSettlement,
    SettledLater,
)

BOOKED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def _none(booked_at: datetime | None = BOOKED) -> AdminCompletion:
    return AdminCompletion(admin_id=7, settlement=NodeSettlement.NONE, booked_at=booked_at)


@pytest.mark.parametrize(
    "settled_at",
    [BOOKED - timedelta(hours=1), BOOKED - SECOND, BOOKED, BOOKED + RACE_MARGIN],
)
def test_a_settlement_not_clearly_after_the_booking_is_in_the_race_window(
    settled_at: datetime,
) -> None:
    assert _none().settled_later(settled_at) is SettledLater.IN_RACE_WINDOW


def test_a_settlement_past_the_margin_is_money_not_counted() -> None:
    later = BOOKED + RACE_MARGIN + SECOND
    assert _none().settled_later(later) is SettledLater.NOT_COUNTED


def test_a_naive_settlement_time_cannot_be_placed_after_the_booking() -> None:
    naive = (BOOKED + timedelta(days=1)).replace(tzinfo=None)
    assert _none().settled_later(naive) is SettledLater.IN_RACE_WINDOW


def test_a_record_without_its_booking_time_credits_nothing() -> None:
    """Kept before `booked_at` was: reported however late the settlement (documented)."""
    old = AdminCompletion.from_json({"admin_id": 7, "node_settlement": "none"})
    assert old == _none(None)
    assert old.settled_later(BOOKED + timedelta(days=30)) is SettledLater.UNTIMED


@pytest.mark.parametrize("raw", ["yesterday", "2026-03-01T12:00:00", 1772366400, None])
def test_a_booking_time_not_an_aware_iso_time_reads_as_missing(raw: object) -> None:
    record = AdminCompletion.from_json({"admin_id": 7, "node_settlement": "none", "booked_at": raw})
    assert record == _none(None)


def test_counted_and_unknown_do_not_depend_on_the_times() -> None:
    late = BOOKED + timedelta(days=1)
    counted = AdminCompletion(admin_id=7, settlement=NodeSettlement.COUNTED, booked_at=BOOKED)
    unknown = AdminCompletion(admin_id=7, settlement=NodeSettlement.UNKNOWN, booked_at=BOOKED)
    assert counted.settled_later(BOOKED) is SettledLater.SAME_MONEY
    assert unknown.settled_later(late) is SettledLater.NODE_NOT_ASKED
    assert AdminCompletion(admin_id=7).settled_later(late) is SettledLater.NODE_NOT_ASKED


def test_the_record_round_trips_with_its_booking_time() -> None:
    raw = _none().to_json()
    assert raw == {"admin_id": 7, "node_settlement": "none", "booked_at": BOOKED.isoformat()}
    assert AdminCompletion.from_json(raw) == _none()
