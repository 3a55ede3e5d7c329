"""Calendar intervals, N-interval renewals and calendar periods (pricing.md §3, D5–D7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.enums import IntervalType
from domain.errors import IntervalCountOutOfRange, InvalidInput, InvalidInterval
from domain.intervals import (
    MAX_INTERVALS,
    MONTHLY,
    Interval,
    add_months,
    check_interval_count,
    checked_interval,
    renewal_base,
    renewal_period,
    require_utc,
    whole_seconds,
)
from domain.money import Currency, Money
from domain.price_basis import PriceBasis


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


DAY, MONTH, YEAR = IntervalType.DAY, IntervalType.MONTH, IntervalType.YEAR

# --- calendar addition -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "interval", "end"),
    [
        (utc(2026, 1, 31, 9, 30), Interval(MONTH), utc(2026, 2, 28, 9, 30)),
        (utc(2028, 1, 31, 9, 30), Interval(MONTH), utc(2028, 2, 29, 9, 30)),
        (utc(2026, 3, 31), Interval(MONTH), utc(2026, 4, 30)),
        (utc(2026, 1, 15, 23, 59, 59), Interval(MONTH), utc(2026, 2, 15, 23, 59, 59)),
        (utc(2026, 12, 31), Interval(MONTH), utc(2027, 1, 31)),
        (utc(2028, 2, 29), Interval(YEAR), utc(2029, 2, 28)),
        (utc(2028, 2, 29), Interval(YEAR, 4), utc(2032, 2, 29)),
        (utc(2026, 5, 31), Interval(MONTH, 3), utc(2026, 8, 31)),
        (utc(2026, 2, 28, 12), Interval(DAY), utc(2026, 3, 1, 12)),
        (utc(2028, 2, 28, 12), Interval(DAY, 2), utc(2028, 3, 1, 12)),
    ],
)
def test_calendar_addition_clamps_to_the_end_of_month(
    start: datetime, interval: Interval, end: datetime
) -> None:
    assert interval.add_to(start) == end


def test_time_of_day_and_microseconds_are_kept() -> None:
    start = utc(2026, 1, 31, 12, 34, 56, 789)
    assert MONTHLY.add_to(start) == utc(2026, 2, 28, 12, 34, 56, 789)


def test_add_months_also_subtracts() -> None:
    assert add_months(utc(2026, 3, 31), -1) == utc(2026, 2, 28)
    assert add_months(utc(2026, 1, 15), -1) == utc(2025, 12, 15)


def test_an_interval_is_named_by_its_amount_and_unit() -> None:
    """One wording for the operator's notes: a changed price basis and a repriced upgrade."""
    assert [Interval(unit, 3).text for unit in IntervalType] == ["3 day", "3 month", "3 year"]
    eur = [Money(Currency.EUR, 100)]
    quarterly = PriceBasis.of(Interval(IntervalType.MONTH, 3), eur)
    assert quarterly.changes_since(PriceBasis.of(MONTHLY, eur)) == ("interval 1 month → 3 month",)


def test_a_year_is_twelve_months() -> None:
    start = utc(2027, 8, 31)
    assert Interval(YEAR).add_to(start) == Interval(MONTH, 12).add_to(start)


def test_n_intervals_are_counted_from_the_base_not_chained() -> None:
    """3 months from 31 Jan ends 30 Apr, not 28 Apr (31 Jan → 28 Feb → 28 Mar → 28 Apr)."""
    start = utc(2026, 1, 31, 12)
    assert MONTHLY.add_to(start, 3) == utc(2026, 4, 30, 12)
    assert Interval(MONTH, 3).add_to(start) == utc(2026, 4, 30, 12)


def test_interval_accepts_the_integer_code_of_its_type() -> None:
    assert Interval(0, 2).unit is DAY
    assert Interval(2).add_to(utc(2026, 1, 1)) == utc(2027, 1, 1)


@pytest.mark.parametrize("unit", [3, -1, True, "month", None])
def test_unknown_interval_type_is_refused(unit: object) -> None:
    with pytest.raises(InvalidInterval):
        Interval(unit)


@pytest.mark.parametrize("amount", [0, -1, True, "1"])
def test_interval_amount_must_be_a_positive_int(amount: object) -> None:
    with pytest.raises(InvalidInterval):
        Interval(MONTH, amount)  # type: ignore[arg-type]


def test_adding_past_the_calendar_is_a_named_error_not_a_crash() -> None:
    with pytest.raises(InvalidInterval):
        Interval(YEAR, 9000).add_to(utc(2026, 1, 1))
    with pytest.raises(InvalidInterval):
        Interval(DAY, 10**7).add_to(utc(2026, 1, 1))


# --- naive and non-UTC datetimes --------------------------------------------------------


def test_naive_datetimes_are_refused_everywhere() -> None:
    naive = datetime(2026, 1, 31, 12)  # noqa: DTZ001
    with pytest.raises(InvalidInput):
        require_utc(naive)
    with pytest.raises(InvalidInput):
        MONTHLY.add_to(naive)
    with pytest.raises(InvalidInput):
        MONTHLY.seconds_of_period_ending(naive)
    with pytest.raises(InvalidInput):
        renewal_base(naive, utc(2026, 1, 1))
    with pytest.raises(InvalidInput):
        renewal_base(None, naive)
    with pytest.raises(InvalidInput):
        renewal_period(MONTHLY, None, naive)


def test_non_utc_offsets_are_refused() -> None:
    with pytest.raises(InvalidInput):
        require_utc(datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1))))


def test_a_zero_offset_zone_is_normalised_to_utc_before_calendar_math() -> None:
    """London is UTC in January but not in July: the math must run on UTC, not wall time."""
    london_winter = datetime(2026, 1, 15, 12, tzinfo=ZoneInfo("Europe/London"))
    end = Interval(MONTH, 6).add_to(london_winter)
    assert end == utc(2026, 7, 15, 12)
    assert end.tzinfo is UTC
    period = renewal_period(Interval(MONTH, 6), None, london_winter)
    assert period.time_value == whole_seconds(utc(2026, 7, 15, 12) - utc(2026, 1, 15, 12))
    assert period.base.tzinfo is UTC


def test_require_utc_returns_a_utc_datetime() -> None:
    gmt = timezone(timedelta(0), "GMT")
    assert require_utc(datetime(2026, 1, 1, tzinfo=gmt)).tzinfo is UTC


# --- interval counts (D6) ---------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 60, 119, 120])
def test_interval_count_accepts_1_to_120(count: int) -> None:
    assert check_interval_count(count) == count


@pytest.mark.parametrize("count", [0, 121, -1, True, False, 1.0, "3", None])
def test_interval_count_outside_1_to_120_is_refused_with_a_clear_message(count: object) -> None:
    with pytest.raises(IntervalCountOutOfRange, match="from 1 to 120"):
        check_interval_count(count)  # type: ignore[arg-type]
    assert IntervalCountOutOfRange.kind == "bad_input"


def test_renewal_period_refuses_a_bad_count() -> None:
    with pytest.raises(IntervalCountOutOfRange):
        renewal_period(MONTHLY, None, utc(2026, 1, 1), MAX_INTERVALS + 1)


# --- renewal periods (D6) ---------------------------------------------------------------


def test_three_months_from_31_january_ends_30_april_with_exact_seconds() -> None:
    base = utc(2026, 1, 31, 12)
    period = renewal_period(MONTHLY, base, base - timedelta(days=1), 3)
    assert period.base == base
    assert period.new_expiry == utc(2026, 4, 30, 12)
    assert period.time_value == 89 * 86_400


def test_renewal_of_a_lapsed_subscription_starts_now() -> None:
    now = utc(2026, 3, 10, 8)
    period = renewal_period(MONTHLY, utc(2026, 1, 31), now)
    assert period.base == now
    assert period.new_expiry == utc(2026, 4, 10, 8)
    assert period.time_value == 31 * 86_400


def test_renewal_of_a_never_paid_subscription_starts_now() -> None:
    now = utc(2026, 2, 1)
    period = renewal_period(MONTHLY, None, now)
    assert (period.base, period.new_expiry) == (now, utc(2026, 3, 1))
    assert period.time_value == 28 * 86_400


def test_renewal_of_an_active_subscription_starts_at_its_expiry() -> None:
    expires = utc(2026, 2, 20)
    assert renewal_base(expires, utc(2026, 2, 1)) == expires
    assert renewal_base(utc(2026, 1, 1), utc(2026, 2, 1)) == utc(2026, 2, 1)
    assert renewal_base(None, utc(2026, 2, 1)) == utc(2026, 2, 1)


def test_a_month_is_28_to_31_days_depending_on_the_base() -> None:
    lengths = {
        renewal_period(MONTHLY, None, utc(2026, m, 1)).time_value // 86_400 for m in range(1, 13)
    }
    assert lengths == {28, 30, 31}
    assert renewal_period(MONTHLY, None, utc(2028, 2, 1)).time_value == 29 * 86_400


def test_yearly_renewal_across_a_leap_day_is_366_days() -> None:
    assert renewal_period(Interval(YEAR), None, utc(2027, 6, 1)).time_value == 366 * 86_400
    assert renewal_period(Interval(YEAR), None, utc(2028, 6, 1)).time_value == 365 * 86_400


# --- calendar periods ending at expiry (D7) ---------------------------------------------


@pytest.mark.parametrize(
    ("interval", "end", "days"),
    [
        (MONTHLY, utc(2026, 3, 31), 31),  # 28 Feb → 31 Mar
        (MONTHLY, utc(2026, 3, 15), 28),
        (MONTHLY, utc(2028, 3, 15), 29),
        (MONTHLY, utc(2026, 4, 30), 31),  # 30 Mar → 30 Apr
        (MONTHLY, utc(2026, 5, 31), 31),  # 30 Apr → 31 May (clamped start)
        (Interval(YEAR), utc(2028, 12, 31), 366),
        (Interval(YEAR), utc(2028, 3, 1), 366),
        (Interval(YEAR), utc(2028, 2, 29), 366),
        (Interval(YEAR), utc(2027, 12, 31), 365),
        (Interval(YEAR), utc(2028, 1, 15), 365),
        (Interval(DAY), utc(2026, 3, 1), 1),
        (Interval(DAY, 7), utc(2026, 3, 1), 7),
        (Interval(MONTH, 3), utc(2026, 4, 30), 90),  # 30 Jan → 30 Apr
    ],
)
def test_period_ending_at_expiry_has_its_real_calendar_length(
    interval: Interval, end: datetime, days: int
) -> None:
    assert interval.seconds_of_period_ending(end) == days * 86_400


def test_start_of_period_ending_steps_back_one_interval() -> None:
    assert MONTHLY.start_of_period_ending(utc(2026, 3, 31, 7)) == utc(2026, 2, 28, 7)
    assert Interval(DAY).start_of_period_ending(utc(2026, 3, 1)) == utc(2026, 2, 28)


# --- whole seconds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "seconds"),
    [
        (timedelta(seconds=1, microseconds=999_999), 1),
        (timedelta(seconds=-1, microseconds=-999_999), -1),
        (timedelta(microseconds=-1), 0),
        (timedelta(days=2, seconds=5), 172_805),
        (timedelta(0), 0),
    ],
)
def test_whole_seconds_truncates_toward_zero(delta: timedelta, seconds: int) -> None:
    assert whole_seconds(delta) == seconds


# --- properties ---------------------------------------------------------------------------

moments = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2200, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
intervals = st.builds(
    Interval, st.sampled_from(list(IntervalType)), st.integers(min_value=1, max_value=24)
)
counts = st.integers(min_value=1, max_value=MAX_INTERVALS)


@given(intervals, st.none() | moments, moments, counts)
def test_renewal_expiry_never_moves_backwards_and_is_after_the_base(
    interval: Interval, expires: datetime | None, now: datetime, count: int
) -> None:
    period = renewal_period(interval, expires, now, count)
    assert period.base >= now
    if expires is not None:
        assert period.base >= expires
        assert period.new_expiry > expires
    assert period.new_expiry > period.base
    assert period.time_value > 0
    assert period.base + timedelta(seconds=period.time_value) == period.new_expiry


@given(intervals, moments, st.integers(min_value=2, max_value=MAX_INTERVALS))
def test_n_intervals_end_no_earlier_than_n_minus_one(
    interval: Interval, base: datetime, count: int
) -> None:
    assert interval.add_to(base, count) >= interval.add_to(base, count - 1)


@given(intervals, moments)
def test_one_interval_is_within_its_calendar_bounds(interval: Interval, base: datetime) -> None:
    seconds = whole_seconds(interval.add_to(base) - base)
    per_unit = {DAY: (1, 1), MONTH: (28, 31), YEAR: (365, 366)}[interval.unit]
    if interval.unit is MONTH and interval.amount > 1:
        low, high = 28 * interval.amount, 31 * interval.amount
    elif interval.unit is YEAR:
        low, high = 365 * interval.amount, 366 * interval.amount
    else:
        low, high = per_unit[0] * interval.amount, per_unit[1] * interval.amount
    assert low * 86_400 <= seconds <= high * 86_400


@given(intervals, moments)
def test_period_ending_at_the_end_of_an_added_interval_is_no_longer_than_it(
    interval: Interval, base: datetime
) -> None:
    end = interval.add_to(base)
    assert interval.start_of_period_ending(end) >= base - timedelta(days=3)
    assert interval.seconds_of_period_ending(end) > 0


@pytest.mark.parametrize(
    ("unit", "most"),
    [(IntervalType.DAY, 36_500), (IntervalType.MONTH, 1_200), (IntervalType.YEAR, 100)],
)
def test_a_stored_interval_is_bounded_by_its_unit(unit: IntervalType, most: int) -> None:
    """About 100 years in every unit: one interval back or forth from today stays a date."""
    assert checked_interval(unit, most) == Interval(unit, most)
    assert checked_interval(int(unit), 1) == Interval(unit, 1)
    for bad in (0, most + 1, 2**63 - 1, True, "1"):
        with pytest.raises(InvalidInterval):
            checked_interval(unit, bad)
    start = utc(2026, 6, 18)
    interval = checked_interval(unit, most)
    assert interval.start_of_period_ending(start) < start < interval.add_to(start)


def test_a_stored_interval_needs_a_known_unit() -> None:
    with pytest.raises(InvalidInterval, match="unknown interval type"):
        checked_interval(7, 1)
