"""Calendar interval arithmetic with month-end clamping (pricing.md §3, DECISIONS D6–D7)."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import attrs

from domain.enums import IntervalType
from domain.errors import IntervalCountOutOfRange, InvalidInput, InvalidInterval

MIN_INTERVALS = 1
MAX_INTERVALS = 120

#: the longest billing interval of each unit: about 100 years whichever unit names it, so one
#: interval from any date of this century stays well inside the calendar (year 9999).
MAX_INTERVAL_AMOUNT: dict[IntervalType, int] = {
    IntervalType.DAY: 36_500,
    IntervalType.MONTH: 1_200,
    IntervalType.YEAR: 100,
}
#: the largest interval amount of any unit (36 500 days): what an API field may bound first
MAX_ANY_INTERVAL_AMOUNT = max(MAX_INTERVAL_AMOUNT.values())


def require_utc(moment: datetime) -> datetime:
    """Refuse naive datetimes; every time in the domain is aware UTC (D5)."""
    if (
        not isinstance(moment, datetime)
        or moment.tzinfo is None
        or moment.utcoffset() != timedelta(0)
    ):
        raise InvalidInput(f"datetime must be timezone-aware UTC, got {moment!r}")
    return moment.astimezone(UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """Add (or subtract) calendar months, clamping the day to the target month's last day."""
    total = moment.year * 12 + (moment.month - 1) + months
    year, month0 = divmod(total, 12)
    if not 1 <= year <= 9999:
        raise InvalidInterval(f"{moment} plus {months} months is outside the calendar")
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return moment.replace(year=year, month=month0 + 1, day=min(moment.day, last_day))


def _add_days(moment: datetime, days: int) -> datetime:
    try:
        return moment + timedelta(days=days)
    except OverflowError:
        raise InvalidInterval(f"{moment} plus {days} days is outside the calendar") from None


def _interval_type(value: object) -> IntervalType:
    """Accept an IntervalType or its integer code; anything else is an unknown type."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInterval(f"unknown interval type: {value!r}")
    try:
        return IntervalType(value)
    except ValueError:
        raise InvalidInterval(f"unknown interval type: {value!r}") from None


@attrs.frozen
class Interval:
    """A billing interval: `amount` × `unit` (e.g. 3 × Month)."""

    unit: IntervalType = attrs.field(converter=_interval_type)
    amount: int = 1

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool) or self.amount < 1:
            raise InvalidInterval(f"interval amount must be a positive integer, got {self.amount}")

    @property
    def text(self) -> str:
        """How notes to the operator name it: "3 month"."""
        return f"{self.amount} {self.unit.name.lower()}"

    def add_to(self, moment: datetime, times: int = 1) -> datetime:
        """`moment` plus `times` whole intervals, counted on the calendar from `moment`."""
        moment = require_utc(moment)
        count = self.amount * times
        if self.unit is IntervalType.DAY:
            return _add_days(moment, count)
        months = count if self.unit is IntervalType.MONTH else 12 * count
        return add_months(moment, months)

    def start_of_period_ending(self, end: datetime) -> datetime:
        """The start of the one interval that ends at `end` (Mar 31 − 1 month = Feb 28/29)."""
        end = require_utc(end)
        if self.unit is IntervalType.DAY:
            return _add_days(end, -self.amount)
        months = self.amount if self.unit is IntervalType.MONTH else 12 * self.amount
        return add_months(end, -months)

    def seconds_of_period_ending(self, end: datetime) -> int:
        """Length in seconds of the interval ending at `end` (D7: real calendar periods)."""
        return whole_seconds(require_utc(end) - self.start_of_period_ending(end))


MONTHLY = Interval(IntervalType.MONTH, 1)


def checked_interval(unit: object, amount: object) -> Interval:
    """The billing interval `amount` × `unit` a plan or subscription may be given: a known
    unit and 1..`MAX_INTERVAL_AMOUNT[unit]`, else `InvalidInterval` (400)."""
    interval = Interval(unit, amount)  # type: ignore[arg-type]  # checked by Interval
    most = MAX_INTERVAL_AMOUNT[interval.unit]
    if interval.amount > most:
        raise InvalidInterval(
            f"interval_amount must be from 1 to {most} for a {interval.unit.name.lower()} "
            f"interval, got {interval.amount}"
        )
    return interval


def check_interval_count(count: int) -> int:
    """N intervals must be 1..120 (D6); anything else is a clear input error."""
    if (
        not isinstance(count, int)
        or isinstance(count, bool)
        or not MIN_INTERVALS <= count <= MAX_INTERVALS
    ):
        raise IntervalCountOutOfRange(
            f"intervals must be a whole number from {MIN_INTERVALS} to {MAX_INTERVALS}, got {count}"
        )
    return count


def whole_seconds(delta: timedelta) -> int:
    """Whole seconds of a duration, truncated toward zero."""
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return micros // 1_000_000 if micros >= 0 else -((-micros) // 1_000_000)


def renewal_base(expires: datetime | None, now: datetime) -> datetime:
    """Renewals start from the later of expiry and now, so a lapsed VM renews from now (R3.2)."""
    now = require_utc(now)
    if expires is None:
        return now
    return max(require_utc(expires), now)


@attrs.frozen
class RenewalPeriod:
    """What N intervals from a base buy: the new expiry and the seconds added."""

    base: datetime
    new_expiry: datetime
    time_value: int


def renewal_period(
    interval: Interval, expires: datetime | None, now: datetime, count: int = 1
) -> RenewalPeriod:
    """N calendar intervals from `max(expires, now)`: 3 months from 31 Jan ends 30 Apr (D6)."""
    check_interval_count(count)
    base = renewal_base(expires, now)
    end = interval.add_to(base, count)
    return RenewalPeriod(base=base, new_expiry=end, time_value=whole_seconds(end - base))
