"""domain.price_basis and domain.credit: price bases, exact valuation, calendar or by value."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.credit import (
    MAX_BY_AMOUNT_INTERVALS,
    MAX_CREDIT_INTERVALS,
    CreditMode,
    credit_payment,
)
from domain.enums import IntervalType, PaymentMethod, SubscriptionPaymentType
from domain.errors import InvalidInput
from domain.exchange import fiat_to_msat
from domain.intervals import MONTHLY, Interval
from domain.model import Subscription, SubscriptionPayment
from domain.money import Currency, Money
from domain.price_basis import PriceBasis, exact_value, rates_from_json
from domain.value_grid import extend_by, grid_edge

NOW = datetime(2026, 1, 31, 12, tzinfo=UTC)
EUR, BTC, USD = Currency.EUR, Currency.BTC, Currency.USD
RATES = {EUR: Decimal(100_000), USD: Decimal(125_000)}
TINY = PriceBasis.of(MONTHLY, [Money(EUR, 132)], country="IRL")
SUB = Subscription(
    id=1,
    user_id=1,
    company_id=1,
    name="s",
    created=NOW,
    currency="EUR",
    expires=datetime(2026, 2, 28, 12, tzinfo=UTC),
    is_active=True,
    is_setup=True,
)


def _payment(amount: int, meta: Any, currency: str = "BTC", **kw: Any) -> SubscriptionPayment:
    values: dict[str, Any] = {
        "id": b"\x01" * 32,
        "subscription_id": 1,
        "user_id": 1,
        "created": NOW,
        "expires": NOW,
        "amount": amount,
        "currency": currency,
        "payment_method": PaymentMethod.LIGHTNING,
        "payment_type": SubscriptionPaymentType.RENEWAL,
        "external_data": "",
        "rate": Decimal(0),
        "metadata": meta,
    }
    values.update(kw)
    return SubscriptionPayment(**values)


def _quote(count: int | None, basis: PriceBasis = TINY) -> dict[str, Any]:
    return {"intervals": count, "price": basis.to_json(), "rates": {"EUR": "100000"}}


def test_a_basis_survives_its_json_and_garbage_is_unknown() -> None:
    basis = PriceBasis.of(
        Interval(IntervalType.YEAR, 2),
        [Money(EUR, 100), Money(USD, 5), Money(EUR, 32)],
        [Money(EUR, 0)],
        "DEU",
    )
    assert basis.recurring == ((EUR, 132), (USD, 5)) and basis.setup == ()
    assert PriceBasis.from_json(basis.to_json()) == basis
    for garbage in (
        None,
        1,
        "x",
        {},
        {"interval": [9, 1], "recurring": {}},
        {"interval": [1, 1], "recurring": {"XXX": 1}},
        {"interval": [1, 1], "recurring": {"EUR": 1.5}},
    ):
        assert PriceBasis.from_json(garbage) is None


def test_changes_are_worded_for_the_operator() -> None:
    big = PriceBasis.of(MONTHLY, [Money(EUR, 28_800)], country="DEU")
    assert big.changes_since(TINY) == (
        "price per interval EUR 1.32 → EUR 288.00",
        "tax country IRL → DEU",
    )
    assert TINY.changes_since(TINY) == () and big.same_price(
        PriceBasis.of(MONTHLY, [Money(EUR, 28_800)], country="IRL")
    )


@given(st.integers(0, 10**9), st.sampled_from([Decimal("100000"), Decimal("12345.67")]))
def test_exact_value_rounds_to_the_d2_conversion(cents: int, rate: Decimal) -> None:
    exact = exact_value(((EUR, cents),), BTC, {EUR: rate})
    assert exact is not None and abs(exact - fiat_to_msat(cents, rate)) <= Fraction(1, 2)


def test_fiat_to_fiat_goes_through_btc_and_a_missing_rate_is_unknown() -> None:
    assert exact_value(((EUR, 100),), USD, RATES) == 125
    assert exact_value(((BTC, 1_000_000),), EUR, RATES) == 100  # 0.00001 BTC = EUR 1.00
    assert exact_value(((EUR, 100),), Currency.GBP, RATES) is None
    assert rates_from_json({"EUR": "1e5", "USD": "-1", "XXX": "2", "GBP": "x"}) == {
        EUR: Decimal("1e5")
    }


@given(st.integers(0, 240), st.integers(0, 999), st.sampled_from(list(IntervalType)))
def test_extending_by_a_value_from_a_grid_edge_is_whole_cells_then_floored_seconds(
    whole: int, thousandths: int, unit: IntervalType
) -> None:
    """From the grid's anchor (an edge): `whole` edges on, then the share of the next cell
    (the grid's own: `whole + 1` intervals from the anchor), in floored seconds."""
    interval = Interval(unit, 1)
    amount = whole + Fraction(thousandths, 1000)
    end = extend_by(interval, NOW, NOW, amount)
    start, following = grid_edge(interval, NOW, whole), grid_edge(interval, NOW, whole + 1)
    assert start <= end < following
    length = (following - start).total_seconds()
    assert (end - start).total_seconds() == int(length * thousandths // 1000)


def test_a_fresh_n_interval_quote_adds_n_calendar_intervals_from_the_expiry_now() -> None:
    credit = credit_payment(_payment(3 * 1_320_000, _quote(3)), SUB, TINY, NOW)
    assert credit.mode is CreditMode.CALENDAR and not credit.needs_operator
    assert credit.new_expiry == datetime(2026, 5, 28, 12, tzinfo=UTC)


def test_a_stale_quote_buys_its_value_at_the_current_price_and_is_reported() -> None:
    big = PriceBasis.of(MONTHLY, [Money(EUR, 28_800)], country="IRL")
    credit = credit_payment(_payment(120 * 1_320_000, _quote(120)), SUB, big, NOW)
    assert credit.mode is CreditMode.BY_VALUE and credit.intervals == Fraction(11, 20)
    # by value on the grid of months from the subscription's creation (31 Jan): the month
    # from 28 Feb is 28 Feb → 31 Mar
    assert credit.seconds == 31 * 86_400 * 11 // 20 and credit.needs_operator


def test_a_tax_country_change_keeps_calendar_time_but_is_reported() -> None:
    moved = PriceBasis.of(MONTHLY, [Money(EUR, 132)], country="DEU")
    credit = credit_payment(_payment(1_320_000, _quote(1)), SUB, moved, NOW)
    assert credit.mode is CreditMode.CALENDAR and credit.changes == ("tax country IRL → DEU",)


def test_setup_fees_are_paid_first_on_a_purchase() -> None:
    first = PriceBasis.of(MONTHLY, [Money(EUR, 100)], [Money(EUR, 50)])
    lapsed = Subscription(id=1, user_id=1, company_id=1, name="s", created=NOW, currency="EUR")
    meta = {"intervals": None, "rates": {"EUR": "100000"}}
    credit = credit_payment(_payment(2_000_000, meta), lapsed, first, NOW)
    assert credit.intervals == Fraction(3, 2)  # (200 − 50) / 100 cents


def test_unvaluable_payments_add_nothing_and_unpriced_ones_what_was_quoted() -> None:
    meta: dict[str, Any] = {"intervals": 1, "rates": {}}
    free = PriceBasis.of(MONTHLY, [])
    assert credit_payment(_payment(1, meta), SUB, free, NOW).mode is CreditMode.UNVALUED
    gbp = PriceBasis.of(MONTHLY, [Money(Currency.GBP, 100)])
    assert credit_payment(_payment(1, meta), SUB, gbp, NOW).seconds == 0
    unpriced = credit_payment(_payment(1, _quote(2)), SUB, None, NOW)
    assert unpriced.mode is CreditMode.UNPRICED and unpriced.needs_operator
    assert unpriced.new_expiry == datetime(2026, 4, 28, 12, tzinfo=UTC)
    legacy = credit_payment(_payment(1, None, time_value=60), SUB, None, NOW)
    assert legacy.seconds == 60


def test_a_price_cut_to_nearly_nothing_is_capped_and_reported() -> None:
    cheap = PriceBasis.of(MONTHLY, [Money(EUR, 1)])
    credit = credit_payment(_payment(10**9, _quote(1)), SUB, cheap, NOW)
    assert credit.capped and credit.needs_operator
    # the expiry, 28 Feb, is the grid's first edge (months from 31 Jan)
    assert credit.new_expiry == grid_edge(MONTHLY, NOW, 1 + MAX_CREDIT_INTERVALS)


def test_the_value_beyond_the_cap_is_counted_for_credit_not_lost() -> None:
    """r9: what a capped payment received beyond its cap bought nothing and was not credited."""
    cheap = PriceBasis.of(MONTHLY, [Money(EUR, 1)])  # 10 000 msat a month
    credit = credit_payment(_payment(10**9, _quote(1)), SUB, cheap, NOW)
    assert credit.cap == MAX_CREDIT_INTERVALS == 1200
    assert credit.uncounted == 10**9 - 1200 * 10_000
    assert credit.to_json()["uncounted"] == credit.uncounted
    assert credit_payment(_payment(12_000_000, _quote(1)), SUB, cheap, NOW).uncounted == 0


def test_an_lnurl_payment_buys_at_most_120_intervals_the_rest_counted_for_credit() -> None:
    """D6's 120: a price cut after an LNURL invoice makes it worth more; the callback
    refuses amounts worth more than 120 intervals at the price it sees."""
    month = 1_320_000
    credit = credit_payment(_payment(200 * month + 7, _quote(None)), SUB, TINY, NOW)
    assert credit.mode is CreditMode.BY_VALUE and credit.capped and credit.needs_operator
    assert credit.cap == MAX_BY_AMOUNT_INTERVALS == 120
    assert credit.new_expiry == grid_edge(MONTHLY, NOW, 1 + 120)  # 29 Feb 2036
    assert credit.uncounted == 80 * month + 7
    assert credit.to_json()["capped_at_intervals"] == 120
    exact = credit_payment(_payment(120 * month, _quote(None)), SUB, TINY, NOW)
    assert not exact.capped and exact.uncounted == 0
    # an N-interval quote at a changed price keeps the wider cap
    stale = credit_payment(_payment(200 * month, _quote(1, TINY)), SUB, TINY_CHANGED, NOW)
    assert not stale.capped and stale.intervals == Fraction(200 * month, 1_330_000)


TINY_CHANGED = PriceBasis.of(MONTHLY, [Money(EUR, 133)], country="IRL")


def test_a_payment_without_a_recorded_price_falls_back_to_its_own_rate() -> None:
    credit = credit_payment(_payment(1_320_000, None, rate=Decimal(100_000)), SUB, TINY, NOW)
    assert credit.mode is CreditMode.BY_VALUE and credit.intervals == 1
    # one month on the grid of months from 31 Jan: 28 Feb → 31 Mar
    assert credit.new_expiry == datetime(2026, 3, 31, 12, tzinfo=UTC)
    with pytest.raises(InvalidInput):
        credit_payment(_payment(1, None), SUB, TINY, "now")  # type: ignore[arg-type]


def test_credit_not_taken_back_is_not_counted_as_paid() -> None:
    """A late payment that applied 1 000 000 msat of credit, 600 000 of which could not be
    taken back: by value it buys what 400 000 + 320 000 msat buy; unpriced, the quoted time
    cut to that share; either way the operator is told."""
    meta = {**_quote(1), "credit_applied": {"amount": 100, "currency": "EUR", "charged": 1_000_000}}
    paid = _payment(320_000, meta)
    whole = credit_payment(paid, SUB, TINY, NOW)
    assert whole.mode is CreditMode.CALENDAR and whole.intervals == 1
    short = credit_payment(paid, SUB, TINY, NOW, unpaid_credit=600_000)
    assert short.mode is CreditMode.BY_VALUE and short.intervals == Fraction(72, 132)
    assert short.needs_operator
    unpriced = credit_payment(paid, SUB, None, NOW, unpaid_credit=600_000)
    assert unpriced.mode is CreditMode.UNPRICED and unpriced.needs_operator
    month = int((datetime(2026, 3, 28, 12, tzinfo=UTC) - SUB.expires).total_seconds())  # type: ignore[operator]
    assert unpriced.seconds == month * 720_000 // 1_320_000


DECADE = Interval(IntervalType.YEAR, 10)
DECADES = PriceBasis.of(DECADE, [Money(BTC, 1_000_000)])


def test_a_paid_renewal_ending_past_the_calendar_is_booked_as_credit_not_raised() -> None:
    """Review r18: 120 × 10 years quoted from an expiry in 8700 (ending 9900) and paid once
    other quotes moved it to 9000 raised `InvalidInterval` at completion: the money came,
    nothing was booked, and every retry failed again. No time; all it received is counted
    for the booking to credit, as a capped payment's rest is."""
    far = datetime(9000, 1, 1, tzinfo=UTC)
    sub = attrs.evolve(SUB, expires=far, interval_type=IntervalType.YEAR, interval_amount=10)
    meta = {
        **_quote(120, DECADES),
        "credit_applied": {"amount": 5, "currency": "EUR", "charged": 7},
    }
    credit = credit_payment(_payment(120_000_000, meta), sub, DECADES, NOW)
    assert (credit.base, credit.new_expiry, credit.seconds) == (far, far, 0)
    assert credit.past_calendar and credit.capped and credit.needs_operator
    assert credit.uncounted == 120_000_000 + 7
    assert credit.to_json()["past_calendar"] is True
    by_value = credit_payment(_payment(10**9, _quote(None, DECADES)), sub, DECADES, NOW)
    assert by_value.past_calendar and by_value.uncounted == 10**9
    unpriced = credit_payment(_payment(5, _quote(120, DECADES)), sub, None, NOW)
    assert unpriced.past_calendar and unpriced.uncounted == 5


GBP_TINY = PriceBasis.of(MONTHLY, [Money(Currency.GBP, 132)], country="IRL")


def test_a_rate_column_is_never_read_as_another_currencys_rate() -> None:
    """A Lightning renewal quoted at EUR 1.32 (1 320 000 msat at its `rate` column, BTC/EUR
    100 000) that stored its price but not its rates, paid after the plan moved to GBP 1.32:
    its column is the EUR rate, so nothing values it in GBP. It was read as BTC/GBP (one
    whole interval bought; at a real BTC/GBP of 80 000 it is worth 0.8 of one): now it is
    not valued, and the operator is told (UNVALUED), rather than valued at a wrong rate."""
    meta = {"intervals": 1, "price": TINY.to_json()}
    paid = _payment(1_320_000, meta, rate=Decimal(100_000))

    credit = credit_payment(paid, SUB, GBP_TINY, NOW)

    assert credit.mode is CreditMode.UNVALUED and credit.new_expiry == credit.base
    # the currency it names is the one its column is for: valued at it as before
    same = credit_payment(paid, SUB, TINY_CHANGED, NOW)
    assert same.mode is CreditMode.BY_VALUE and same.intervals == Fraction(132, 133)
