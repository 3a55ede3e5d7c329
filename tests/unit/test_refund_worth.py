"""A refund is the unused time at today's price, never more than was paid for it: right after
an upgrade (D7 charged the growth by one rate per second of the month ending at the expiry)
it pays back at most what the renewal and the upgrade took; right after a plain renewal,
exactly what was paid (found by r3)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.enums import PaymentMethod
from domain.exchange import RateTable
from domain.intervals import MONTHLY, Interval
from domain.money import Currency, Money
from domain.paid_periods import Cut, PaidPeriod, PaidUpgrade, unused_intervals, unused_time
from domain.refund_worth import RefundWorth
from domain.upgrade import upgrade_quote
from tests.unit.test_paid_periods import COUNTS, INTERVALS, MOMENTS, stacked

EUR = Currency.EUR


def refund(
    price: int,
    interval: Interval,
    expires: datetime,
    at: datetime,
    periods: Sequence[PaidPeriod],
    upgrades: Sequence[PaidUpgrade] = (),
    cuts: Sequence[Cut] = (),
) -> int:
    """What a refund from `at` pays at today's `price` (EUR cents per interval)."""
    time = unused_time(interval, expires, at, periods, cuts, upgrades)
    return RefundWorth.of(((EUR, price),), EUR, time).valued(None, at).money.amount


def charge(old: int, new: int, expires: datetime, now: datetime) -> int:
    """D7's card charge of growing from `old` to `new` EUR cents a month."""
    quote = upgrade_quote(
        Money(EUR, old), MONTHLY, Money(EUR, new), expires, now, PaymentMethod.REVOLUT, RateTable()
    )
    return quote.upgrade.money.amount


NOW = datetime(2026, 3, 31, tzinfo=UTC)
TEN_YEARS = datetime(2036, 3, 31, tzinfo=UTC)  # 120 months; the last one has 31 days


def test_the_reviewers_case_pays_back_what_was_paid() -> None:
    """EUR 10 a month paid for 120 months, upgraded at once to EUR 110: D7 charged the growth
    11 783.88 (11 783.870…, up to the cent; ~117.8 months of it); the price in force values
    the time at 120 × 110 = 13 200, 216.12 more than the 12 983.88 taken in. The refund is
    what was taken in."""
    renewal = PaidPeriod(key="r", order=1, start=NOW, end=TEN_YEARS, paid=Fraction(120_000))
    grew = charge(1_000, 11_000, TEN_YEARS, NOW)
    upgrade = PaidUpgrade(key="u", order=2, start=NOW, end=TEN_YEARS, paid=Fraction(grew))
    assert grew == 1_178_388

    assert refund(11_000, MONTHLY, TEN_YEARS, NOW, [renewal], [upgrade]) == 120_000 + grew
    # without the upgrade's payment known, nothing limits the time: the price in force
    unknown = PaidUpgrade(key="u", order=2, start=NOW, end=TEN_YEARS, paid=None)
    assert refund(11_000, MONTHLY, TEN_YEARS, NOW, [renewal], [unknown]) == 1_320_000


def test_time_whose_payment_is_not_known_is_valued_at_the_price_in_force() -> None:
    """A period whose payment is missing (`paid` None) is valued at today's price; the known
    period alone is limited; time no period explains (days an admin added) is worth nothing
    on both sides."""
    known = PaidPeriod(key="k", order=1, start=NOW, end=MONTHLY.add_to(NOW), paid=Fraction(100))
    missing = PaidPeriod(key="m", order=2, start=known.end, end=MONTHLY.add_to(known.end))
    expires = missing.end + timedelta(days=10)

    # EUR 5.00 a month today: the known month was paid 1.00; the missing month (30 Apr →
    # 30 May) is not known; the 10 days after it were given
    assert unused_intervals(MONTHLY, expires, missing.end, []) == 0
    assert refund(500, MONTHLY, expires, NOW, [known, missing]) == 100 + 500
    # not limited at all: 2 months at today's price, the days still nothing
    assert refund(500, MONTHLY, expires, NOW, [attrs.evolve(known, paid=None), missing]) == (
        2 * 500
    )


def test_days_added_free_are_not_refunded_as_money() -> None:
    """The reviewer's case (r1): one month paid EUR 2.70, then 365 days added free by an
    admin. The refund is the month alone: what was paid while the price stands, today's
    price of the month once it has fallen (the payment is no allowance the free days could
    draw on), and nothing once the month is used."""
    month = PaidPeriod(key="m", order=1, start=NOW, end=MONTHLY.add_to(NOW), paid=Fraction(270))
    expires = month.end + timedelta(days=365)

    assert refund(270, MONTHLY, expires, NOW, [month]) == 270
    assert refund(100, MONTHLY, expires, NOW, [month]) == 100
    assert refund(270, MONTHLY, expires, month.end, [month]) == 0


@settings(max_examples=200)
@given(INTERVALS, MOMENTS, COUNTS, st.integers(0, 10**8), st.integers(1, 10**8))
def test_free_days_after_the_paid_time_never_add_to_a_refund(
    interval: Interval, base: datetime, counts: list[int], used: int, free: int
) -> None:
    """However much time an admin adds after what was paid, and from whenever a refund
    starts, it pays exactly what it would without the free time."""
    periods, paid_until = stacked(interval, base, counts)
    periods = [
        attrs.evolve(p, paid=Fraction(500 * c)) for p, c in zip(periods, counts, strict=True)
    ]
    at = base + timedelta(seconds=used)
    given_until = paid_until + timedelta(seconds=free)

    assert refund(500, interval, given_until, at, periods) == refund(
        500, interval, paid_until, at, periods
    )


def test_an_upgrade_counts_only_until_a_refund_cut_its_time() -> None:
    """A month at 1.00 upgraded at once to 11.00 (charged 10.00), refunded to credit 10 days
    in (cut), renewed for a month at 11.00: the upgrade's money for the cut time was paid
    back with that refund, so the renewal's month is limited by its own 11.00 only."""
    end = MONTHLY.add_to(NOW)
    first = PaidPeriod(key="a", order=1, start=NOW, end=end, paid=Fraction(100))
    upgrade = PaidUpgrade(key="u", order=2, start=NOW, end=end, paid=Fraction(1_000))
    cut_to = NOW + timedelta(days=10)
    cut = Cut(order=3, to=cut_to)
    second = PaidPeriod(
        key="b", order=4, start=cut_to, end=MONTHLY.add_to(cut_to), paid=Fraction(1_100)
    )

    assert refund(1_100, MONTHLY, second.end, cut_to, [first, second], [upgrade], [cut]) == 1_100


def test_an_upgrade_adds_nothing_to_a_period_paid_after_it() -> None:
    """Time paid after the upgrade was paid at the grown price: the upgrade's money does not
    also count for it (an expiry set back by hand and paid again)."""
    end = MONTHLY.add_to(NOW)
    upgrade = PaidUpgrade(key="u", order=1, start=NOW, end=end, paid=Fraction(1_000))
    later = PaidPeriod(key="b", order=2, start=NOW, end=end, paid=Fraction(1_100))
    time = unused_time(MONTHLY, end, NOW, [later], (), [upgrade])
    assert (time.known, time.paid) == (Fraction(1), Fraction(1_100))


# --- properties ----------------------------------------------------------------------------

PRICES = st.integers(min_value=1, max_value=10**6)


@settings(max_examples=300)
@given(INTERVALS, MOMENTS, COUNTS, PRICES, st.integers(0, 10**8))
def test_a_refund_after_plain_renewals_is_what_was_paid(
    interval: Interval, base: datetime, counts: list[int], price: int, used: int
) -> None:
    """Invoices of `counts` intervals at `price` each: refunded at once, exactly what was
    paid; later, the price times the unused intervals, floored (nothing limits it)."""
    periods, expires = stacked(interval, base, counts)
    paid = [attrs.evolve(p, paid=Fraction(price * n)) for p, n in zip(periods, counts, strict=True)]
    assert refund(price, interval, expires, base, paid) == price * sum(counts)

    at = min(base + timedelta(seconds=used), expires)
    count = unused_intervals(interval, expires, at, periods)
    assert refund(price, interval, expires, at, paid) == int(price * count)


GROWTHS = st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=3)


@settings(max_examples=300)
@given(
    MOMENTS,
    st.integers(min_value=1, max_value=130),
    PRICES,
    GROWTHS,
    st.lists(st.integers(0, 10**8), min_size=4, max_size=4),
)
def test_a_refund_after_upgrades_never_pays_back_more_than_was_paid(
    base: datetime, months: int, price: int, growths: list[int], waits: list[int]
) -> None:
    """`months` bought at `price`, then up to three upgrades at later moments, each charged
    by D7; refunded right after the last or later: never more than the unused share of what
    the payments took (each over the time it paid for), so never more than their sum, and
    never more than the time at today's price."""
    expires = MONTHLY.add_to(base, months)
    bought = Fraction(price * months)
    renewal = PaidPeriod(key="r", order=1, start=base, end=expires, paid=bought)
    upgrades: list[PaidUpgrade] = []
    charged: list[int] = []
    at, now_price = base, price
    for i, growth in enumerate(growths):
        at = min(at + timedelta(seconds=waits[i]), expires - timedelta(seconds=1))
        charged.append(charge(now_price, now_price + growth, expires, at))
        upgrades.append(
            PaidUpgrade(key=f"u{i}", order=2 + i, start=at, end=expires, paid=Fraction(charged[-1]))
        )
        now_price += growth
    later = min(at + timedelta(seconds=waits[3]), expires)

    for when in (at, later):
        got = refund(now_price, MONTHLY, expires, when, [renewal], upgrades)
        left = int((expires - when).total_seconds())
        share = bought * Fraction(left, int((expires - base).total_seconds()))
        for up, paid in zip(upgrades, charged, strict=True):
            share += paid * Fraction(left, int((up.end - up.start).total_seconds()))
        assert got <= share <= bought + sum(charged)
        assert got <= int(now_price * unused_intervals(MONTHLY, expires, when, [renewal]))
