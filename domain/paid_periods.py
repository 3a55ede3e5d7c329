"""The unused share of the periods a subscription's payments paid for (refunds, R10)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from fractions import Fraction

import attrs

from domain.intervals import Interval, require_utc, whole_seconds
from domain.unused_time import intervals_in
from domain.value_grid import grid_position


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
    #: what its payment carried for that time, exactly, in smallest units of the currency
    #: the refund is valued in (`paid_value.paid_for_time`); None: not known
    paid: Fraction | None = None
    #: its time was bought by value (`CreditMode.BY_VALUE`): measured on the subscription's
    #: grid of intervals (`value_grid`), as the payment bought it, not from its own start
    by_value: bool = False


@attrs.frozen(kw_only=True)
class PaidUpgrade:
    """An upgrade booked `order`-th: it paid `paid` (as `PaidPeriod.paid`; None: not known)
    for the growth from `start` (when it was booked) to `end` (the expiry it was quoted
    to, D7)."""

    key: str
    order: int
    start: datetime
    end: datetime
    paid: Fraction | None


@attrs.frozen(kw_only=True)
class PaymentShare:
    """One payment's part of the unused paid time (`key`: its id in hex): the intervals of
    it its period holds (`intervals`; 0 for an upgrade, which bought no time of its own),
    what the payment carried for them (`paid`, as `PaidPeriod.paid`; None: not known) and
    for the whole time it bought (`whole`; None: not known)."""

    key: str
    intervals: Fraction = Fraction(0)
    paid: Fraction | None = None
    whole: Fraction | None = None


@attrs.frozen(kw_only=True)
class UnusedTime:
    """The unused paid time counted in billing intervals (`intervals`); of them, `known`
    are time whose payments are known, and `paid` is what those payments carried for it
    (the unused share of each, upgrades included). With `known` 0 nothing caps the value.
    `shares`: each payment's part of it (`PaymentShare`), the newest booked first, so a
    refund can say which invoice gives back what."""

    intervals: Fraction
    known: Fraction = Fraction(0)
    paid: Fraction = Fraction(0)
    shares: tuple[PaymentShare, ...] = ()


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


Piece = tuple[PaidPeriod | None, datetime, datetime]


def _pieces(
    expires: datetime, at: datetime, periods: Sequence[PaidPeriod], cuts: Sequence[Cut]
) -> Iterator[Piece]:
    """The unused paid time from `at` to `expires` cut in pieces, each the period whose it is
    (newest first; None: no period's) and its span."""
    taken: list[Span] = []
    for period in sorted(periods, key=lambda p: p.order, reverse=True):
        lo, hi = max(period.start, at), min(_live_end(period, cuts), expires)
        if whole_seconds(period.end - period.start) <= 0 or hi <= lo:
            continue
        for gap in _gaps((lo, hi), taken):  # what a newer period left
            yield period, gap[0], gap[1]
        taken.append((lo, hi))
    for gap in _gaps((at, expires), taken):
        yield None, gap[0], gap[1]


def period_intervals(interval: Interval, period: PaidPeriod, anchor: datetime | None) -> Fraction:
    """How many intervals `period` holds, as its payment bought them: counted forward from
    its start (`intervals_in`), or, bought by value and with the grid's `anchor` known, its
    span on that grid (`value_grid.grid_position`), the measure its time was computed on,
    so time bought by value is worth what was paid for it (floored seconds aside)."""
    if period.by_value and anchor is not None:
        end = grid_position(interval, anchor, period.end)
        return end - grid_position(interval, anchor, period.start)
    return intervals_in(interval, period.start, period.end)


def unused_intervals(
    interval: Interval,
    expires: datetime,
    at: datetime,
    periods: Sequence[PaidPeriod],
    cuts: Sequence[Cut] = (),
    *,
    anchor: datetime | None = None,
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
    recorded) is worth nothing: no payment bought it, so no refund pays it back. A period
    bought by value is worth its span on the subscription's grid (`period_intervals`, with
    the grid's `anchor`, `credit.value_anchor`), and its unused share is its unused span on
    that grid over its span (`_share`).
    """
    return unused_time(interval, expires, at, periods, cuts, anchor=anchor).intervals


def _share(
    interval: Interval, period: PaidPeriod, lo: datetime, hi: datetime, anchor: datetime | None
) -> Fraction:
    """The part of `period` from `lo` to `hi` as a share of its length: its seconds over the
    period's, or, bought by value on a known grid, its span on that grid over the period's
    (review r23), the measure the period's intervals were counted on: a refund after using
    a short (dear per day) cell of the grid gives back what the grid says is unused, not
    the seconds' share of it (31 Jan → 31 Mar bought by value, refunded on 28 Feb: one
    interval unused, not 31/59 of two)."""
    if period.by_value and anchor is not None:
        whole = period_intervals(interval, period, anchor)
        if whole > 0:
            part = grid_position(interval, anchor, hi) - grid_position(interval, anchor, lo)
            return part / whole
    return Fraction(whole_seconds(hi - lo), whole_seconds(period.end - period.start))


def _upgrades_on(
    period: PaidPeriod,
    lo: datetime,
    hi: datetime,
    upgrades: Sequence[PaidUpgrade],
    cuts: Sequence[Cut],
) -> dict[str, Fraction]:
    """What the upgrades booked after `period` paid for its time from `lo` to `hi`, by
    upgrade: each its amount spread evenly over the seconds it was quoted for, up to a
    refund cut after it."""
    total: dict[str, Fraction] = {}
    for up in upgrades:
        seconds = whole_seconds(up.end - up.start)
        if up.order < period.order or up.paid is None or seconds <= 0:
            continue
        end = min([up.end, *(c.to for c in cuts if c.order > up.order)])
        overlap = whole_seconds(min(hi, end) - max(lo, up.start))
        if overlap > 0:
            total[up.key] = total.get(up.key, Fraction(0)) + up.paid * Fraction(overlap, seconds)
    return total


def unused_time(
    interval: Interval,
    expires: datetime,
    at: datetime,
    periods: Sequence[PaidPeriod],
    cuts: Sequence[Cut] = (),
    upgrades: Sequence[PaidUpgrade] = (),
    *,
    anchor: datetime | None = None,
) -> UnusedTime:
    """`unused_intervals`, and what the payments carried for that time (refunds never pay
    back more than was paid for it).

    The time of a period whose payment is known (`PaidPeriod.paid`) is paid for by the
    unused share of that payment (`_share`: its unused seconds over its seconds, or bought
    by value its unused span on the grid over its span) and the unused share
    of each upgrade booked after it that covers it (its amount over the seconds it was
    quoted for, from its booking to the expiry it was quoted to; a refund cut after it ends
    it). Time of a period whose payment is not known is not counted in `known`: nothing says
    what was paid for it. An upgrade whose payment is not known leaves all the time uncapped
    (`known` 0): what it paid is not known. Time no period explains is not counted at all
    (`unused_intervals`): it was given, not bought.
    """
    expires, at = require_utc(expires), require_utc(at)
    if expires <= at:
        return UnusedTime(intervals=Fraction(0))
    total = known = paid = Fraction(0)
    shares = _Shares()
    for period, lo, hi in _pieces(expires, at, periods, cuts):
        if period is None:  # no payment bought it (days an admin added free): worth nothing
            continue
        share = _share(interval, period, lo, hi, anchor)
        count = period_intervals(interval, period, anchor) * share
        total += count
        own = None if period.paid is None else period.paid * share
        shares.add(period.key, period.order, count, own, period.paid)
        if period.paid is not None:
            known += count
            paid += period.paid * share
            for key, part in _upgrades_on(period, lo, hi, upgrades, cuts).items():
                paid += part
                up = next(u for u in upgrades if u.key == key)
                shares.add(key, up.order, Fraction(0), part, up.paid)
    if any(up.paid is None for up in upgrades):
        return UnusedTime(intervals=total, shares=shares.of())
    return UnusedTime(intervals=total, known=known, paid=paid, shares=shares.of())


class _Shares:
    """`PaymentShare`s summed by payment as the pieces of the unused time are walked."""

    def __init__(self) -> None:
        self._by_key: dict[str, tuple[int, PaymentShare]] = {}

    def add(
        self,
        key: str,
        order: int,
        intervals: Fraction,
        paid: Fraction | None,
        whole: Fraction | None,
    ) -> None:
        _, found = self._by_key.get(key, (order, PaymentShare(key=key, paid=Fraction(0))))
        both = None if paid is None or found.paid is None else found.paid + paid
        summed = PaymentShare(
            key=key, intervals=found.intervals + intervals, paid=both, whole=whole
        )
        self._by_key[key] = (order, summed)

    def of(self) -> tuple[PaymentShare, ...]:
        """The shares, the newest booked first."""
        ordered = sorted(self._by_key.values(), key=lambda pair: pair[0], reverse=True)
        return tuple(share for _, share in ordered)
