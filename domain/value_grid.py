"""Time bought by value, measured on a fixed grid of calendar intervals, so payments add up."""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction

from domain.enums import IntervalType
from domain.intervals import Interval, require_utc

_MICROS_PER_SECOND = 1_000_000


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * _MICROS_PER_SECOND + delta.microseconds


def grid_edge(interval: Interval, anchor: datetime, k: int) -> datetime:
    """The `k`-th edge of the grid: `k` whole intervals counted on the calendar from
    `anchor` (D6's month-end clamping; `k` may be negative), never from another edge, so
    the edges of a grid anchored on 31 Jan are 28 Feb, 31 Mar, 30 Apr, …"""
    return interval.add_to(anchor, k)


def _cell_of(interval: Interval, anchor: datetime, moment: datetime) -> int:
    """The `k` whose cell holds `moment`: `edge(k) <= moment < edge(k + 1)`."""
    if interval.unit is IntervalType.DAY:  # UTC days are all 86 400 s: exact
        return (moment - anchor) // timedelta(days=interval.amount)
    months = interval.amount * (1 if interval.unit is IntervalType.MONTH else 12)
    span = (moment.year - anchor.year) * 12 + moment.month - anchor.month
    k = span // months  # within one of the answer: clamping moves an edge by days only
    while grid_edge(interval, anchor, k) > moment:
        k -= 1
    while grid_edge(interval, anchor, k + 1) <= moment:
        k += 1
    return k


def grid_position(interval: Interval, anchor: datetime, moment: datetime) -> Fraction:
    """Where `moment` lies on the grid, in intervals, exactly: `k` plus the share of the
    cell `edge(k)`–`edge(k + 1)` that has passed, each cell measured by its own length."""
    anchor, moment = require_utc(anchor), require_utc(moment)
    k = _cell_of(interval, anchor, moment)
    start = grid_edge(interval, anchor, k)
    length = _micros(grid_edge(interval, anchor, k + 1) - start)
    return k + Fraction(_micros(moment - start), length)


def extend_by(interval: Interval, anchor: datetime, base: datetime, amount: Fraction) -> datetime:
    """`base` plus `amount` intervals' worth of time, on the grid anchored at `anchor`.

    The paid amount is spent cell by cell, each cell of the grid at its own length: what is
    left of the cell holding `base`, then whole cells, then a share of the last one. The
    grid does not move with the expiry, so a payment split in two buys what it buys at once
    (the cells a first part reaches are the cells the whole would have crossed); measuring a
    fraction over the interval that starts at the current expiry instead made two payments
    from 28 Feb buy 2.85 days more than one (review r18). The time added is floored to
    whole seconds from `base` (never more than was paid for), so a split payment can come
    short of one payment by a second or two (each floor, a second of a 28-day cell worth up
    to 31/28 s in a 31-day one), never past it. From a grid edge, one interval's worth is
    exactly one calendar interval (the next edge).
    """
    anchor, base = require_utc(anchor), require_utc(base)
    if amount <= 0:
        return base
    target = grid_position(interval, anchor, base) + amount
    k = target.numerator // target.denominator
    start = grid_edge(interval, anchor, k)
    length = _micros(grid_edge(interval, anchor, k + 1) - start)
    end_micros = _micros(start - base) + (target - k) * length  # exact, from `base`
    seconds = end_micros // _MICROS_PER_SECOND  # Fraction // int: floored
    return base + timedelta(seconds=int(seconds))
