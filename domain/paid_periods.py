"""The unused share of the periods a subscription's payments paid for (refunds, R10)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from fractions import Fraction

import attrs

from domain.intervals import Interval, require_utc, whole_seconds
from domain.unused_time import intervals_in, intervals_left


@attrs.frozen(kw_only=True)
class PaidPeriod:
    """The time one booked Purchase or Renewal added: from `start` (its base, the expiry it
    found or the moment it was booked if later) to `end` (the expiry it left). `order`
    places it among the other records (a later booking or refund has a greater one); `key`
    names it (its payment id)."""

    key: str
    order: int
    start: datetime
    end: datetime


@attrs.frozen(kw_only=True)
class Cut:
    """A refund that cut the paid time back to `to`; `order` as `PaidPeriod.order`."""

    order: int
    to: datetime


def newest_period(periods: Sequence[PaidPeriod]) -> PaidPeriod | None:
    """The period booked last: the one the paid time was last extended by, which names a
    refund of it."""
    return max(periods, key=lambda p: p.order, default=None)


def _live_end(period: PaidPeriod, cuts: Sequence[Cut]) -> datetime:
    """Where the period's time still paid ends: its end, or the earliest cut made after it."""
    return min([period.end, *(c.to for c in cuts if c.order > period.order)])


Span = tuple[datetime, datetime]


def _gaps(span: Span, taken: list[Span]) -> list[Span]:
    """The parts of `span` none of `taken` covers, in order."""
    gaps, at = [], span[0]
    for lo, hi in sorted(taken):
        if lo > at:
            gaps.append((at, min(lo, span[1])))
        at = max(at, hi)
    if at < span[1]:
        gaps.append((at, span[1]))
    return [(lo, hi) for lo, hi in gaps if hi > lo]


def unused_intervals(
    interval: Interval,
    expires: datetime,
    at: datetime,
    periods: Sequence[PaidPeriod],
    cuts: Sequence[Cut] = (),
) -> Fraction:
    """How many billing intervals' worth of paid time is left from `at` to `expires`: the
    unused share of each period the money actually bought.

    A period from `start` to `end` is worth `intervals_in(start, end)` intervals, counted
    forward from its real start as the payment bought them (31 Jan → 28 Feb is one month),
    and its unused share is its unused seconds over its seconds. So a month bought on 31 Jan
    and refunded at once is worth the whole month, and 4 days later 24/28 of it (stepping a
    month back from 28 Feb gave 28 Jan, and 28/31 at once). A refund made after a period
    was booked cut its time back (`cuts`): what lies beyond the cut is no longer that
    period's, even if a later payment's period covers it again. Where periods overlap
    anyway (an expiry set by hand), the newer one counts.

    Time no period explains (days an admin added free, time paid before the periods were
    recorded) is valued by the calendar as before: whole intervals counted back from the
    end of each such gap, the rest a share of the interval holding its start
    (`intervals_left`).
    """
    expires, at = require_utc(expires), require_utc(at)
    if expires <= at:
        return Fraction(0)
    total = Fraction(0)
    taken: list[Span] = []
    for period in sorted(periods, key=lambda p: p.order, reverse=True):
        seconds = whole_seconds(period.end - period.start)
        lo, hi = max(period.start, at), min(_live_end(period, cuts), expires)
        if seconds <= 0 or hi <= lo:
            continue
        worth = intervals_in(interval, period.start, period.end)
        for gap_lo, gap_hi in _gaps((lo, hi), taken):  # what a newer period left
            total += worth * Fraction(whole_seconds(gap_hi - gap_lo), seconds)
        taken.append((lo, hi))
    for gap_lo, gap_hi in _gaps((at, expires), taken):
        total += intervals_left(interval, gap_hi, gap_lo).count
    return total
