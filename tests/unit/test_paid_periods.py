"""The unused share of the periods payments actually bought (refunds): a month bought on 31 Jan
and refunded at once is the whole month, not 28/31 of it; properties over stacked payments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.enums import IntervalType
from domain.intervals import MONTHLY, Interval
from domain.paid_periods import Cut, PaidPeriod, newest_period, unused_intervals, unused_time
from domain.unused_time import intervals_in, intervals_left
from domain.value_grid import extend_by, grid_position

DAY = 86_400
YEARLY = Interval(IntervalType.YEAR)


def utc(month: int, day: int, hour: int = 12, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def period(start: datetime, end: datetime, order: int = 1) -> PaidPeriod:
    """A payment that added `start` → `end`, booked `order`-th."""
    return PaidPeriod(key=f"p{order}", order=order, start=start, end=end)


def by_value(start: datetime, end: datetime, order: int = 1) -> PaidPeriod:
    """A payment credited by value that added `start` → `end`, booked `order`-th."""
    return PaidPeriod(key=f"p{order}", order=order, start=start, end=end, by_value=True)


def stacked(
    interval: Interval, base: datetime, counts: Sequence[int]
) -> tuple[list[PaidPeriod], datetime]:
    """Payments of `counts` intervals each, each extending from the expiry the one before
    left (D6: its own N calendar intervals); their periods and the expiry they reach."""
    periods, start = [], base
    for i, count in enumerate(counts):
        end = interval.add_to(start, count)
        periods.append(period(start, end, order=i + 1))
        start = end
    return periods, start


def test_a_month_bought_on_the_31st_and_refunded_at_once_is_the_whole_month() -> None:
    """31 Jan + 1 month = 28 Feb: stepping a month back from 28 Feb gives 28 Jan, so the old
    calendar rule valued it at 28/31; the period bought is 31 Jan → 28 Feb, all unused."""
    bought = [period(utc(1, 31), utc(2, 28))]
    assert intervals_left(MONTHLY, utc(2, 28), utc(1, 31)).count == Fraction(28, 31)

    assert unused_intervals(MONTHLY, utc(2, 28), utc(1, 31), bought) == 1
    # 4 days in: 24 of the 28 days bought are left
    assert unused_intervals(MONTHLY, utc(2, 28), utc(2, 4), bought) == Fraction(24, 28)
    assert unused_intervals(MONTHLY, utc(2, 28), utc(2, 28), bought) == 0


@pytest.mark.parametrize("counts", [[1, 2], [2, 1], [3], [1, 1, 1]])
def test_stacked_payments_from_a_month_end_are_worth_what_they_bought(counts: list[int]) -> None:
    """From 31 Jan, 1 then 2 months end 28 Apr, 2 then 1 month 30 Apr (D23's clamping per
    invoice): either way 3 months were bought, and refunded at once they are 3 months."""
    periods, expires = stacked(MONTHLY, utc(1, 31), counts)
    assert unused_intervals(MONTHLY, expires, utc(1, 31), periods) == 3


def test_a_twelve_month_payment_is_spread_over_its_own_days() -> None:
    """One period of 12 months (365 days): each second of it is worth 12/365 days' price."""
    periods, expires = stacked(MONTHLY, utc(3, 15), [12])
    assert unused_intervals(MONTHLY, expires, utc(3, 15), periods) == 12
    later = utc(3, 15) + timedelta(days=73)
    assert unused_intervals(MONTHLY, expires, later, periods) == Fraction(12 * 292, 365)


def test_time_bought_by_value_is_worth_the_intervals_it_bought() -> None:
    """A stale invoice credited by value on the grid of months from 31 Jan: 1½ months from
    31 Jan are 31 Jan → 28 Feb and half of 28 Feb → 31 Mar (`value_grid.extend_by`), and
    that is what it is worth, measured on that grid."""
    anchor = utc(1, 31)
    end = extend_by(MONTHLY, anchor, anchor, Fraction(3, 2))
    assert end == utc(3, 16, 0)
    bought = [by_value(anchor, end)]
    assert unused_intervals(MONTHLY, end, anchor, bought, anchor=anchor) == Fraction(3, 2)


def test_a_month_bought_by_value_off_the_grid_is_one_month_refunded_at_once() -> None:
    """Review r18: a month's price paid by value on 1 Mar, on the grid of months from 28 Jan,
    is 27/28 of 28 Feb → 28 Mar and 1/28 of 28 Mar → 28 Apr: counted forward from 1 Mar (a
    month is 1 Mar → 1 Apr) it would be 0.9 month, and its refund at once 10 % short."""
    anchor, start = utc(1, 28), utc(3, 1)
    end = extend_by(MONTHLY, anchor, start, Fraction(1))
    assert end == utc(3, 28) + timedelta(seconds=31 * 86_400 // 28)
    worth = unused_intervals(MONTHLY, end, start, [by_value(start, end)], anchor=anchor)
    assert 1 - Fraction(1, DAY) < worth <= 1  # the floored fraction of a second aside
    assert intervals_in(MONTHLY, start, end) < Fraction(91, 100)  # not its measure


def test_a_renewal_after_a_lapse_is_its_own_period() -> None:
    """Paid 1 Jan → 1 Feb, lapsed, renewed on 10 Feb → 10 Mar (28 days): on 15 Feb 23 of
    those 28 days are left; the lapsed month plays no part."""
    periods = [period(utc(1, 1), utc(2, 1), 1), period(utc(2, 10), utc(3, 10), 2)]
    assert unused_intervals(MONTHLY, utc(3, 10), utc(2, 15), periods) == Fraction(23, 28)


def test_a_refund_from_a_later_date_then_the_rest_pay_back_the_whole_month() -> None:
    """Bought 31 Jan → 28 Feb; refunded from 14 Feb (the expiry cut to 14 Feb), then the rest
    from now: 14/28 + 14/28, the whole month. The time before the cut is still a share of
    the month bought (as a month ending 14 Feb, from 17 Jan, it was 14/31)."""
    bought = [period(utc(1, 31), utc(2, 28))]
    first = unused_intervals(MONTHLY, utc(2, 28), utc(2, 14), bought)

    rest = unused_intervals(MONTHLY, utc(2, 14), utc(1, 31), bought, [Cut(order=2, to=utc(2, 14))])

    assert (first, rest) == (Fraction(1, 2), Fraction(1, 2))


def test_time_a_refund_cut_is_not_counted_again_under_a_later_period() -> None:
    """A year bought 31 Jan, refunded from 1 Feb (cut to 1 Feb), a month renewed from the cut
    (→ 1 Mar), 10 days added free by an admin (→ 11 Mar): the year's time after 1 Feb was
    paid back, so 1 → 11 Mar is the free days, worth nothing, not the year's."""
    periods = [
        period(utc(1, 31), utc(1, 31, year=2027), 1),
        period(utc(2, 1), utc(3, 1), 3),
    ]
    cut = Cut(order=2, to=utc(2, 1))
    assert unused_intervals(MONTHLY, utc(3, 11), utc(2, 1), periods, [cut]) == 1


def test_a_cut_made_before_a_period_was_booked_leaves_it_whole() -> None:
    """Bought 31 Jan → 28 Feb, refunded from 14 Feb on 1 Feb, renewed on 2 Feb from the cut
    expiry → 14 Mar: on 2 Feb the renewal is whole and 12 of the first month's 28 days
    before the cut are left."""
    periods = [period(utc(1, 31), utc(2, 28), 1), period(utc(2, 14), utc(3, 14), 3)]
    cut = Cut(order=2, to=utc(2, 14))
    assert unused_intervals(MONTHLY, utc(3, 14), utc(2, 2), periods, [cut]) == 1 + Fraction(12, 28)


def test_time_no_period_explains_is_worth_nothing() -> None:
    """No recorded period (time no payment bought, as far as the records tell): nothing.
    Days an admin added free after a period: nothing for that gap, the period whole."""
    assert unused_intervals(MONTHLY, utc(3, 31), utc(3, 30), []) == 0
    assert unused_intervals(MONTHLY, utc(2, 28), utc(1, 31), []) == 0
    # bought 31 Jan → 28 Feb, 3 days added free (→ 3 Mar), 365 more (→ 3 Mar 2027)
    bought = [period(utc(1, 31), utc(2, 28))]
    assert unused_intervals(MONTHLY, utc(3, 3), utc(1, 31), bought) == 1
    assert unused_intervals(MONTHLY, utc(3, 3, year=2027), utc(2, 14), bought) == Fraction(14, 28)
    # free days before a period (an admin's extend, then a renewal from its end)
    later = [period(utc(3, 3), utc(4, 3))]
    assert unused_intervals(MONTHLY, utc(4, 3), utc(2, 28), later) == 1


def test_where_periods_overlap_the_newer_counts() -> None:
    """An expiry set back by hand and paid again: 10 Feb → 10 Mar bought over the end of
    31 Jan → 28 Feb. The older period counts up to where the newer starts."""
    periods = [period(utc(1, 31), utc(2, 28), 1), period(utc(2, 10), utc(3, 10), 2)]
    count = unused_intervals(MONTHLY, utc(3, 10), utc(2, 4), periods)
    assert count == 1 + Fraction(6, 28)


def test_the_newest_period_is_the_last_booked() -> None:
    a, b = period(utc(1, 31), utc(2, 28), 1), period(utc(2, 28), utc(3, 28), 2)
    assert newest_period([b, a]) is b and newest_period([a, b]) is b
    assert newest_period([]) is None


@pytest.mark.parametrize(
    ("interval", "start", "end", "count"),
    [
        (MONTHLY, utc(1, 31), utc(2, 28), 1),
        (MONTHLY, utc(1, 31), utc(3, 31), 2),
        (MONTHLY, utc(1, 31), utc(3, 14), Fraction(3, 2)),  # 28 Feb + 14 of its 28 days
        # 28 Feb + a whole month is 28 Mar, but 2 months from 31 Jan are 31 Mar: never more
        (MONTHLY, utc(1, 31), utc(3, 28), 2),
        (MONTHLY, utc(1, 31), utc(3, 30), 2),
        (YEARLY, utc(2, 29, year=2028), utc(2, 28, year=2029), 1),
        (Interval(IntervalType.DAY, 2), utc(1, 1), utc(1, 6), Fraction(5, 2)),
        (MONTHLY, utc(1, 31), utc(1, 31), 0),
    ],
)
def test_intervals_in_counts_forward_from_the_start(
    interval: Interval, start: datetime, end: datetime, count: Fraction
) -> None:
    assert intervals_in(interval, start, end) == count


# --- properties ----------------------------------------------------------------------------

INTERVALS = st.builds(
    Interval, st.sampled_from(list(IntervalType)), st.integers(min_value=1, max_value=3)
)
# hypothesis bounds are naive by design; `timezones` makes every generated value aware UTC
MOMENTS = st.datetimes(
    min_value=datetime(2024, 1, 1),  # noqa: DTZ001
    max_value=datetime(2030, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
).map(lambda d: d.replace(microsecond=0))
COUNTS = st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=4)


@settings(max_examples=300)
@given(INTERVALS, MOMENTS, COUNTS)
def test_prepaid_stacked_payments_refunded_at_once_are_all_they_bought(
    interval: Interval, base: datetime, counts: list[int]
) -> None:
    """Whatever the base (month ends included) and however the intervals were split into
    invoices: refunded when bought, they are worth exactly the intervals bought."""
    periods, expires = stacked(interval, base, counts)
    assert unused_intervals(interval, expires, base, periods) == sum(counts)


@settings(max_examples=300)
@given(INTERVALS, MOMENTS, COUNTS, st.integers(0, 10**8), st.integers(0, 10**8))
def test_the_unused_worth_never_grows_and_never_exceeds_what_was_bought(
    interval: Interval, base: datetime, counts: list[int], used: int, more: int
) -> None:
    periods, expires = stacked(interval, base, counts)
    at = min(base + timedelta(seconds=used), expires)
    later = min(at + timedelta(seconds=more), expires)
    now_worth = unused_intervals(interval, expires, at, periods)
    assert 0 <= unused_intervals(interval, expires, later, periods) <= now_worth <= sum(counts)


@settings(max_examples=300)
@given(INTERVALS, MOMENTS, COUNTS, st.integers(0, 10**8), st.integers(0, 10**8))
def test_a_refund_from_a_later_date_and_then_the_rest_add_up_to_one_refund(
    interval: Interval, base: datetime, counts: list[int], used: int, gap: int
) -> None:
    """Refunding from `split` (the expiry cut to it), then the time before it, pays back
    exactly what one refund of all of it would (before flooring to money)."""
    periods, expires = stacked(interval, base, counts)
    at = min(base + timedelta(seconds=used), expires)
    split = min(at + timedelta(seconds=gap), expires)
    whole = unused_intervals(interval, expires, at, periods)
    first = unused_intervals(interval, expires, split, periods)
    cuts = [Cut(order=len(periods) + 1, to=split)] if split < expires else []

    rest = unused_intervals(interval, split, at, periods, cuts)

    assert first + rest == whole


@settings(max_examples=300)
@given(INTERVALS, MOMENTS, st.integers(0, 10**8), st.integers(0, 10**8))
def test_intervals_in_never_falls_as_the_end_moves_on(
    interval: Interval, start: datetime, a: int, b: int
) -> None:
    near, far = sorted((a, b))
    assert intervals_in(interval, start, start + timedelta(seconds=near)) <= intervals_in(
        interval, start, start + timedelta(seconds=far)
    )


@settings(max_examples=300)
@given(INTERVALS, MOMENTS, MOMENTS, st.fractions(min_value=0, max_value=30, max_denominator=1000))
def test_time_bought_by_value_counts_back_to_what_it_bought(
    interval: Interval, anchor: datetime, base: datetime, bought: Fraction
) -> None:
    """`extend_by` floors the seconds it adds: its period, refunded at once, is worth at
    most what was bought and short of it by less than one second's share of an interval,
    wherever the base lies on the grid."""
    end = extend_by(interval, anchor, base, bought)
    count = unused_intervals(interval, end, base, [by_value(base, end)], anchor=anchor)
    assert bought - Fraction(1, DAY) < count <= bought  # an interval is a day or more


def test_a_by_value_period_refunded_after_its_short_cell_gives_back_what_the_grid_leaves() -> None:
    """Review r23: two months bought by value on the grid of 31 Jan (31 Jan → 31 Mar),
    refunded on 28 Feb, one cell of the grid used: one interval and half the payment are
    unused, not 31/59 of the seconds (62/59 intervals, 5 % of a month more)."""
    anchor, end = datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)
    period = PaidPeriod(key="p", order=1, start=anchor, end=end, paid=Fraction(264), by_value=True)
    at = datetime(2026, 2, 28, tzinfo=UTC)

    left = unused_time(MONTHLY, end, at, [period], anchor=anchor)

    assert left.intervals == left.known == 1
    assert left.paid == 132


@settings(max_examples=300)
@given(INTERVALS, MOMENTS, MOMENTS, st.fractions(min_value=0, max_value=30, max_denominator=1000))
def test_the_unused_part_of_a_by_value_period_is_its_span_left_on_the_grid(
    interval: Interval, anchor: datetime, base: datetime, bought: Fraction
) -> None:
    """Refunded anywhere inside it, a period bought by value is worth its span on the grid
    from the refund to its end, and its payment is shared by that span over its own."""
    end = extend_by(interval, anchor, base, bought)
    period = PaidPeriod(key="p", order=1, start=base, end=end, paid=Fraction(1000), by_value=True)
    at = base + (end - base) / 3
    at = at.replace(microsecond=0)
    whole = grid_position(interval, anchor, end) - grid_position(interval, anchor, base)
    left = grid_position(interval, anchor, end) - grid_position(interval, anchor, max(at, base))

    unused = unused_time(interval, end, at, [period], anchor=anchor)

    assert unused.intervals == (left if end > at else 0)
    if end > at and whole > 0:
        assert unused.paid == 1000 * left / whole
