"""The calendar-exact worth, in billing intervals, of paid time (refunds, pricing.md §10)."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction

import attrs

from domain.enums import IntervalType
from domain.intervals import Interval, require_utc, whole_seconds
from domain.money import Money


@attrs.frozen(kw_only=True)
class IntervalsLeft:
    """The time from `now` to an expiry counted in billing intervals, exactly.

    `whole` intervals end at the expiry and start at or after `now`; `part` seconds are left
    of the calendar interval of `period` seconds that holds `now` (0 at a boundary).
    """

    whole: int
    part: int
    period: int

    @property
    def count(self) -> Fraction:
        """`whole + part / period`: how many intervals' worth of time is left."""
        return self.whole + (Fraction(self.part, self.period) if self.part else Fraction(0))


def _back(interval: Interval, expires: datetime, times: int) -> datetime:
    """The start of the `times` whole intervals that end at `expires`, counted back on the
    calendar from `expires` as renewals count forward from their base (D6 month-end rule)."""
    return interval.add_to(expires, -times)


def _at_least(interval: Interval, expires: datetime, now: datetime) -> int:
    """A count of whole intervals between `now` and `expires` that surely fit, counted back
    from `expires` or forward from `now`, at most two below the true count (so the stepping
    loops stay short for long spans)."""
    if interval.unit is IntervalType.DAY:  # UTC days are all 86 400 s: exact
        return whole_seconds(expires - now) // (interval.amount * 86_400)
    months = interval.amount * (1 if interval.unit is IntervalType.MONTH else 12)
    span = (expires.year - now.year) * 12 + expires.month - now.month
    # this many steps back (forward) still lands in a calendar month after now's (before
    # the expiry's)
    return max(0, span // months - 1)


def intervals_left(interval: Interval, expires: datetime, now: datetime) -> IntervalsLeft:
    """The paid time left at `now` in whole and partial intervals (nothing once expired).

    Whole calendar intervals are stepped back from `expires` while their start is still at or
    after `now`; each is a whole interval, whatever its length. The rest is a share, in whole
    seconds (truncated), of the calendar interval that holds `now`, the next step back. So
    12 months bought at once are 12 intervals whichever month comes last, where one rate per
    second over the last month alone (D7, for upgrades) would value them by its 28–31 days.
    """
    expires, now = require_utc(expires), require_utc(now)
    if expires <= now:
        return IntervalsLeft(whole=0, part=0, period=interval.seconds_of_period_ending(expires))
    whole = _at_least(interval, expires, now)
    while _back(interval, expires, whole + 1) >= now:
        whole += 1
    start = _back(interval, expires, whole)
    return IntervalsLeft(
        whole=whole,
        part=whole_seconds(start - now),
        # measured between two steps back from `expires`, not one step back from `start`:
        # from 31 Mar, 2 months back is 31 Jan, so the month holding 1 Feb is 31 Jan–28 Feb
        period=whole_seconds(start - _back(interval, expires, whole + 1)),
    )


def intervals_in(interval: Interval, start: datetime, end: datetime) -> Fraction:
    """How many intervals the time from `start` to `end` is, counted forward on the calendar
    from `start` as an N-interval renewal made then buys them: whole intervals
    (`add_to(start, k)`, D6's month-end clamping), then the rest as its share in whole
    seconds of the next interval (and at most one of it). So 31 Jan → 28 Feb is exactly one
    month, and a calendar renewal's time is worth the intervals it bought; the count never
    falls as `end` moves on. Time bought by value is measured on the subscription's grid
    instead (`paid_periods.period_intervals`)."""
    start, end = require_utc(start), require_utc(end)
    if end <= start:
        return Fraction(0)
    whole = _at_least(interval, end, start)
    while interval.add_to(start, whole + 1) <= end:
        whole += 1
    edge = interval.add_to(start, whole)
    rest = whole_seconds(end - edge)
    if rest == 0:
        return Fraction(whole)
    # at most one: from a month end the next interval after the edge can be shorter than
    # the step to the next whole (31 Jan: edge 28 Feb, then 28 Mar, but 2 months is 31 Mar)
    return whole + min(Fraction(1), Fraction(rest, whole_seconds(interval.add_to(edge) - edge)))


def unused_value(price: Money, interval: Interval, expires: datetime, now: datetime) -> Money:
    """What the time left is worth at `price` per interval: `price × intervals left`, exact,
    floored to the minor unit (money paid back never rounds up). It never exceeds the price
    of the whole intervals that, counted forward from `now`, reach `expires`."""
    exact = price.amount * intervals_left(interval, expires, now).count
    return Money(price.currency, exact.numerator // exact.denominator)
