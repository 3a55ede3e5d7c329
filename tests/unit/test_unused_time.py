"""The calendar-exact value of paid time left (refunds, pricing.md §10): whole intervals at
the whole price, the rest a share of the calendar interval holding now, floored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.enums import IntervalType
from domain.intervals import MONTHLY, Interval, renewal_period
from domain.money import Currency, Money
from domain.unused_time import IntervalsLeft, intervals_left, unused_value

EUR_132 = Money(Currency.EUR, 132)
YEARLY = Interval(IntervalType.YEAR)
DAY = 86_400


def utc(year: int, month: int, day: int, hour: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, 0, second, tzinfo=UTC)


def test_one_interval_left_is_its_share_of_the_month_ending_at_expiry() -> None:
    left = intervals_left(MONTHLY, utc(2026, 3, 31), utc(2026, 3, 30))
    assert left == IntervalsLeft(whole=0, part=DAY, period=31 * DAY)
    assert unused_value(EUR_132, MONTHLY, utc(2026, 3, 31), utc(2026, 3, 30)) == Money(
        Currency.EUR, 4
    )  # 132 / 31 = 4.26 → 4


@pytest.mark.parametrize(
    ("expires", "last_month_days"),
    [
        (utc(2027, 3, 15, 12), 28),  # 15 Feb → 15 Mar 2027
        (utc(2028, 3, 15, 12), 29),  # 15 Feb → 15 Mar 2028 (leap)
        (utc(2027, 5, 15, 12), 30),  # 15 Apr → 15 May
        (utc(2027, 4, 15, 12), 31),  # 15 Mar → 15 Apr
    ],
)
def test_twelve_months_left_are_twelve_prices_whatever_the_last_month(
    expires: datetime, last_month_days: int
) -> None:
    bought = expires.replace(year=expires.year - 1)
    assert MONTHLY.seconds_of_period_ending(expires) == last_month_days * DAY
    price = Money(Currency.EUR, 4800)
    assert unused_value(price, MONTHLY, expires, bought) == Money(Currency.EUR, 12 * 4800)
    # one second later: 11 whole months and all but a second of the first, never more
    later = unused_value(price, MONTHLY, expires, bought + timedelta(seconds=1))
    assert later == Money(Currency.EUR, 12 * 4800 - 1)
    left = intervals_left(MONTHLY, expires, bought + timedelta(seconds=1))
    assert (left.whole, left.part) == (11, left.period - 1)
    assert left.period == MONTHLY.seconds_of_period_ending(MONTHLY.add_to(bought))


def test_the_reviewers_case_is_at_most_what_was_paid() -> None:
    """12 × 1.32 EUR bought 15 Mar 2026 ending 15 Mar 2027 (a 28-day last month), one second
    later: D7's one rate would credit 17.20 EUR; the calendar value is under 15.84."""
    now = utc(2026, 3, 15, 12, 1)
    value = unused_value(EUR_132, MONTHLY, utc(2027, 3, 15, 12), now)
    assert value == Money(Currency.EUR, 12 * 132 - 1)


def test_a_yearly_plan_counts_the_leap_year_it_is_in() -> None:
    expires = utc(2028, 3, 1)
    price = Money(Currency.EUR, 12_000)
    # one day before a year boundary: a whole year (1 Mar 2027 → 2028) and a day of the
    # year before it (1 Mar 2026 → 2027, 365 days)
    left = intervals_left(YEARLY, expires, utc(2027, 2, 28))
    assert left == IntervalsLeft(whole=1, part=DAY, period=365 * DAY)
    # the year ending 1 Mar 2028 holds 29 Feb: 2 days of its 366
    left = intervals_left(YEARLY, expires, utc(2028, 2, 28))
    assert left == IntervalsLeft(whole=0, part=2 * DAY, period=366 * DAY)
    assert unused_value(price, YEARLY, expires, utc(2028, 2, 28)) == Money(
        Currency.EUR, 12_000 * 2 // 366
    )
    assert unused_value(price, YEARLY, utc(2029, 3, 1), utc(2027, 3, 1)) == Money(
        Currency.EUR, 2 * 12_000
    )


@pytest.mark.parametrize(
    ("interval", "expires", "now", "whole"),
    [
        (MONTHLY, utc(2027, 3, 15, 12), utc(2026, 11, 15, 12), 4),
        (MONTHLY, utc(2026, 3, 31), utc(2026, 2, 28), 1),  # 31 Mar − 1 month = 28 Feb
        (MONTHLY, utc(2026, 3, 31), utc(2026, 1, 31), 2),
        (YEARLY, utc(2028, 2, 29), utc(2027, 2, 28), 1),  # 29 Feb 2028 − 1 year = 28 Feb
        (Interval(IntervalType.DAY, 3), utc(2026, 3, 10), utc(2026, 3, 1), 3),
        (Interval(IntervalType.MONTH, 3), utc(2026, 12, 31), utc(2026, 6, 30), 2),
    ],
)
def test_now_at_a_boundary_is_whole_intervals(
    interval: Interval, expires: datetime, now: datetime, whole: int
) -> None:
    left = intervals_left(interval, expires, now)
    assert (left.whole, left.part, left.count) == (whole, 0, Fraction(whole))
    assert unused_value(EUR_132, interval, expires, now) == Money(Currency.EUR, whole * 132)


@pytest.mark.parametrize("after", [timedelta(0), timedelta(seconds=1), timedelta(days=400)])
def test_nothing_is_left_at_or_after_expiry(after: timedelta) -> None:
    expires = utc(2026, 3, 31)
    assert unused_value(EUR_132, MONTHLY, expires, expires + after) == Money(Currency.EUR, 0)
    assert intervals_left(MONTHLY, expires, expires + after).count == 0


def test_month_end_anchors_step_back_as_renewals_step_forward() -> None:
    """From 31 Mar: 28 Feb, 31 Jan, 31 Dec (each counted from the expiry, not one from the
    other), so 2 months renewed from 31 Jan are worth 2 prices on 31 Jan, and on 1 Feb the
    month holding now is 31 Jan → 28 Feb (28 days), not 28 Jan → 28 Feb."""
    expires = utc(2026, 3, 31)
    assert renewal_period(MONTHLY, utc(2026, 1, 31), utc(2026, 1, 31), 2).new_expiry == expires
    assert unused_value(EUR_132, MONTHLY, expires, utc(2026, 1, 31)) == Money(Currency.EUR, 2 * 132)
    assert intervals_left(MONTHLY, expires, utc(2026, 2, 1)) == IntervalsLeft(
        whole=1, part=27 * DAY, period=28 * DAY
    )
    # 29 Feb 2028: a month back is 29 Jan, a year back 28 Feb 2027
    leap = utc(2028, 2, 29)
    assert intervals_left(MONTHLY, leap, utc(2028, 1, 29)).count == 1
    assert intervals_left(MONTHLY, leap, utc(2028, 1, 30)) == IntervalsLeft(
        whole=0, part=30 * DAY, period=31 * DAY
    )
    assert intervals_left(YEARLY, leap, utc(2027, 2, 28)).count == 1
    assert intervals_left(YEARLY, leap, utc(2027, 3, 1)) == IntervalsLeft(
        whole=0, part=365 * DAY, period=366 * DAY
    )


def test_a_long_span_of_short_intervals_is_counted_exactly() -> None:
    daily = Interval(IntervalType.DAY)
    # 36 524 days (24 leap years) less one second
    assert intervals_left(daily, utc(2126, 1, 1), utc(2026, 1, 1, 0, 1)) == IntervalsLeft(
        whole=36_523, part=DAY - 1, period=DAY
    )
    assert intervals_left(MONTHLY, utc(2126, 1, 1), utc(2026, 1, 1)).count == 1200


def test_microseconds_left_over_are_not_paid_back() -> None:
    now = utc(2026, 3, 30) + timedelta(microseconds=1)
    assert intervals_left(MONTHLY, utc(2026, 3, 31), now).part == DAY - 1


# --- properties ----------------------------------------------------------------------------

INTERVALS = st.builds(
    Interval,
    st.sampled_from(list(IntervalType)),
    st.integers(min_value=1, max_value=3),
)
# hypothesis bounds are naive by design; `timezones` makes every generated value aware UTC
MOMENTS = st.datetimes(
    min_value=datetime(2024, 1, 1),  # noqa: DTZ001
    max_value=datetime(2032, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
).map(lambda d: d.replace(microsecond=0))
PRICES = st.integers(min_value=0, max_value=10**9).map(lambda a: Money(Currency.EUR, a))


def _forward(interval: Interval, now: datetime, expires: datetime) -> int:
    """Whole intervals counted forward from now until they reach the expiry."""
    n = 0
    while interval.add_to(now, n) < expires:
        n += 1
    return n


@settings(max_examples=300)
@given(INTERVALS, MOMENTS, MOMENTS, PRICES)
def test_never_more_than_the_intervals_counted_forward_from_now(
    interval: Interval, a: datetime, b: datetime, price: Money
) -> None:
    now, expires = min(a, b), max(a, b)
    value = unused_value(price, interval, expires, now)
    assert 0 <= value.amount <= price.amount * _forward(interval, now, expires)
    left = intervals_left(interval, expires, now)
    assert 0 <= left.part < left.period or left.count == 0


@settings(max_examples=300)
@given(
    INTERVALS,
    MOMENTS,
    st.integers(min_value=1, max_value=24),
    st.integers(min_value=0, max_value=10**8),
    PRICES,
)
def test_a_renewal_refunded_is_never_worth_more_than_it_cost(
    interval: Interval, base: datetime, count: int, used: int, price: Money
) -> None:
    """N intervals renewed from any base (month ends included) are worth at most N prices at
    the base and at any moment after it, and exactly N when the base is not clamped."""
    expires = renewal_period(interval, base, base, count).new_expiry
    now = min(base + timedelta(seconds=used), expires)
    assert unused_value(price, interval, expires, now).amount <= price.amount * count
    if base.day <= 28:
        assert unused_value(price, interval, expires, base).amount == price.amount * count
