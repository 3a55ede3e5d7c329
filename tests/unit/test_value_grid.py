"""Time bought by value on a subscription's fixed grid of calendar intervals (review r18):
payments split in two buy what they buy at once, and never more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.credit import CreditMode, credit_payment
from domain.enums import IntervalType, PaymentMethod, SubscriptionPaymentType
from domain.intervals import MONTHLY, Interval
from domain.model import Subscription, SubscriptionPayment
from domain.money import Currency, Money
from domain.price_basis import PRICE_KEY, RATES_KEY, PriceBasis, rates_json
from domain.value_grid import extend_by, grid_edge, grid_position


def utc(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


ANCHOR_28 = utc(1, 28, year=2025)  # a subscription created on the 28th
ANCHOR_31 = utc(1, 31)
PRICE_MSAT = 5_000_000  # one month, in BTC to keep rates out of it
BASIS = PriceBasis.of(MONTHLY, [Money(Currency.BTC, PRICE_MSAT)])
NOW = utc(2, 27)


def _sub(expires: datetime) -> Subscription:
    return Subscription(
        id=1,
        user_id=1,
        company_id=1,
        name="vm",
        created=ANCHOR_28,
        currency="BTC",
        expires=expires,
        is_active=True,
        is_setup=True,
    )


def _lnurl_payment(msat: int) -> SubscriptionPayment:
    """A completed pay-what-you-want (LNURL) payment: `{"intervals": null}`, price stored."""
    return SubscriptionPayment(
        id=b"\x01" * 32,
        subscription_id=1,
        user_id=1,
        created=NOW,
        expires=NOW + timedelta(minutes=10),
        amount=msat,
        currency="BTC",
        payment_method=PaymentMethod.LIGHTNING,
        payment_type=SubscriptionPaymentType.RENEWAL,
        external_data="",
        rate=Decimal(1),
        metadata={"intervals": None, PRICE_KEY: BASIS.to_json(), RATES_KEY: rates_json({})},
    )


def _pay(sub: Subscription, msat: int) -> Subscription:
    credit = credit_payment(_lnurl_payment(msat), sub, BASIS, NOW)
    assert credit.mode is CreditMode.BY_VALUE
    return attrs.evolve(sub, expires=credit.new_expiry)


def test_one_months_price_paid_in_two_lnurl_payments_buys_what_it_buys_at_once() -> None:
    """From 28 Feb: 1/20 then 19/20 of a month's price bought 30 Mar 20:24 (each fraction
    measured over the month starting at the expiry it found: 28 days, then 31), 2.85 days
    more than the month paid at once."""
    at_once = _pay(_sub(utc(2, 28)), PRICE_MSAT).expires
    split = _pay(_pay(_sub(utc(2, 28)), PRICE_MSAT // 20), PRICE_MSAT - PRICE_MSAT // 20).expires
    assert at_once == utc(3, 28)
    assert split == at_once


YEARLY = Interval(IntervalType.YEAR)
TWO_DAYS = Interval(IntervalType.DAY, 2)


@pytest.mark.parametrize(
    ("interval", "anchor", "base", "amount", "end"),
    [
        # from a grid edge, a whole interval's worth is the next edge (a calendar month)
        (MONTHLY, ANCHOR_28, utc(2, 28), Fraction(1), utc(3, 28)),
        (MONTHLY, ANCHOR_31, utc(2, 28), Fraction(1), utc(3, 31)),  # edges 28 Feb, 31 Mar
        (MONTHLY, ANCHOR_31, utc(2, 28), Fraction(2), utc(4, 30)),
        # the rest of the 28-day cell (14 days: ½), then ½ of the 31-day one
        (MONTHLY, ANCHOR_28, utc(3, 14), Fraction(1), utc(4, 12, 12)),
        # 1/20 of 28 Feb → 28 Mar is 1.4 days
        (MONTHLY, ANCHOR_28, utc(2, 28), Fraction(1, 20), utc(3, 1, 9, 36)),
        (TWO_DAYS, utc(1, 1, year=2025), utc(1, 1), Fraction(5, 2), utc(1, 6)),
        (YEARLY, utc(2, 28, year=2025), utc(2, 28, year=2027), Fraction(1), utc(2, 28, year=2028)),
        (MONTHLY, ANCHOR_28, utc(3, 1), Fraction(0), utc(3, 1)),
    ],
)
def test_extend_by_spends_the_value_cell_by_cell(
    interval: Interval, anchor: datetime, base: datetime, amount: Fraction, end: datetime
) -> None:
    assert extend_by(interval, anchor, base, amount) == end


def test_the_grid_is_counted_from_its_anchor_never_from_another_edge() -> None:
    """Edges of a grid anchored on 31 Jan: 28 Feb, 31 Mar, 30 Apr (not 28 Mar, 28 Apr)."""
    edges = [grid_edge(MONTHLY, ANCHOR_31, k) for k in range(-1, 4)]
    assert edges == [utc(12, 31, year=2025), ANCHOR_31, utc(2, 28), utc(3, 31), utc(4, 30)]
    assert grid_position(MONTHLY, ANCHOR_31, utc(3, 14)) == 1 + Fraction(14, 31)


# --- properties ----------------------------------------------------------------------------

INTERVALS = st.builds(
    Interval, st.sampled_from(list(IntervalType)), st.integers(min_value=1, max_value=3)
)
# hypothesis bounds are naive by design; `timezones` makes every generated value aware UTC
MOMENTS = st.datetimes(
    min_value=datetime(2024, 1, 1),  # noqa: DTZ001
    max_value=datetime(2030, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
AMOUNTS = st.fractions(min_value=0, max_value=30, max_denominator=10_000)
#: what two floors can cost a split payment: the first floor's < 1 s of one cell is worth
#: up to 31/28 s of another (months; 366/365 for years), then the second floor. Exactly
#: 2 s happens (hypothesis finds it with enough examples: 22:01:00 once, 22:00:58 split)
SPLIT_LOSS = timedelta(seconds=2)


@settings(max_examples=500)
@given(INTERVALS, MOMENTS, MOMENTS, AMOUNTS, AMOUNTS)
def test_two_payments_buy_what_one_buys_never_more(
    interval: Interval, anchor: datetime, base: datetime, a: Fraction, b: Fraction
) -> None:
    once = extend_by(interval, anchor, base, a + b)
    twice = extend_by(interval, anchor, extend_by(interval, anchor, base, a), b)
    assert timedelta(0) <= once - twice <= SPLIT_LOSS


@settings(max_examples=500)
@given(INTERVALS, MOMENTS, MOMENTS, AMOUNTS, AMOUNTS)
def test_more_money_never_buys_less_time(
    interval: Interval, anchor: datetime, base: datetime, a: Fraction, b: Fraction
) -> None:
    low, high = sorted((a, b))
    assert base <= extend_by(interval, anchor, base, low) <= extend_by(interval, anchor, base, high)


@settings(max_examples=500)
@given(INTERVALS, MOMENTS, MOMENTS, AMOUNTS)
def test_time_bought_never_exceeds_what_was_paid_and_falls_short_by_under_a_second(
    interval: Interval, anchor: datetime, base: datetime, amount: Fraction
) -> None:
    """Counted back on the grid, the time is at most what was paid for, and the seconds
    floored lose less than one second of the cell it ends in."""
    end = extend_by(interval, anchor, base, amount)
    bought = grid_position(interval, anchor, end) - grid_position(interval, anchor, base)
    assert bought <= amount
    k = grid_position(interval, anchor, end).__floor__()
    cell = grid_edge(interval, anchor, k + 1) - grid_edge(interval, anchor, k)
    assert amount - bought < Fraction(1, int(cell.total_seconds()))


@settings(max_examples=500)
@given(INTERVALS, MOMENTS, st.integers(-40, 40), st.integers(0, 40))
def test_whole_intervals_from_a_grid_edge_are_calendar_intervals(
    interval: Interval, anchor: datetime, k: int, count: int
) -> None:
    """From an edge, n intervals' worth is n edges on: one interval's price at an expiry on
    the grid buys exactly the calendar interval a renewal from the anchor's day buys."""
    edge = grid_edge(interval, anchor, k)
    assert extend_by(interval, anchor, edge, Fraction(count)) == grid_edge(
        interval, anchor, k + count
    )
    if count == 1 and interval.add_to(edge) == grid_edge(interval, anchor, k + 1):
        assert extend_by(interval, anchor, edge, Fraction(1)) == interval.add_to(edge)
