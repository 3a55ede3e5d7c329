"""What a Lightning payer sent beyond the invoice: valued down, kept in JSON, told plainly."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.credit_conversion import convert_at
from domain.money import Currency, Money
from domain.overpayment import OVERPAID_KEY, Overpaid, excess_value, invoice_note, overpaid_of


@pytest.mark.parametrize(
    ("msat", "currency", "rate", "value"),
    [
        (1_239_000, Currency.EUR, Decimal(100_000), 123),  # 123.9 cents: down, never up
        (999, Currency.EUR, Decimal(100_000), 0),  # less than a cent
        (1_000_000, Currency.EUR, Decimal("100000.5"), 100),  # 100.0005 cents
        (1_239_000, Currency.BTC, None, 1_239_000),  # BTC needs no rate
        (1_239_000, Currency.EUR, None, None),  # a fiat without a rate cannot be valued
        (1_239_000, Currency.EUR, Decimal(0), None),
        (1_005_000, Currency.EUR, Decimal(100_000), 100),  # 100.5 cents: down, not half-up
        (10_000, Currency.EUR, Decimal(100_000), 1),  # exactly a cent
        (9_999, Currency.EUR, Decimal(100_000), 0),
        (10_001, Currency.EUR, Decimal(100_000), 1),
        (3, Currency.EUR, Decimal("3333333333.34"), 10),  # 10.00000000002 cents
        (3, Currency.EUR, Decimal("3333333333.33"), 9),  # 9.99999999999 cents
        (10**18, Currency.JPY, Decimal("1.5"), 1_500_000_000),  # JPY counts hundredths too
        (0, Currency.EUR, Decimal(100_000), 0),
        (0, Currency.BTC, None, 0),
        (0, Currency.EUR, None, None),  # no rate: not valued, however little arrived
        (1_239_000, Currency.EUR, Decimal(-100_000), None),
        (1_239_000, Currency.EUR, Decimal("NaN"), None),
        (1_239_000, Currency.EUR, Decimal("sNaN"), None),
        (1_239_000, Currency.EUR, Decimal("Infinity"), None),
    ],
)
def test_an_excess_is_valued_exactly_and_rounded_down(
    msat: int, currency: Currency, rate: Decimal | None, value: int | None
) -> None:
    assert excess_value(msat, currency, rate) == value


def test_a_negative_excess_is_a_bug() -> None:
    with pytest.raises(ValueError, match="never negative"):
        excess_value(-1, Currency.EUR, Decimal(100_000))


@given(
    msat=st.integers(0, 10**18),
    rate=st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(10**9), places=8),
)
def test_an_excess_is_the_exact_value_floored_and_as_a_credit_conversion_values_it(
    msat: int, rate: Decimal
) -> None:
    """Never more than arrived, less by under one unit; the same figure the account credit's
    conversion (`convert_at`, rounded down once) gives the same msat at the same rate."""
    value = excess_value(msat, Currency.EUR, rate)
    assert value is not None
    exact = Fraction(msat * 100) * Fraction(rate) / 10**11
    assert value <= exact < value + 1
    converted = convert_at([Money(Currency.BTC, msat)], Currency.EUR, {Currency.EUR: rate})
    assert converted is not None and converted.money.amount == value


def test_the_record_round_trips_and_malformed_ones_read_as_none() -> None:
    excess = Overpaid(msat=5, credited=0, currency="EUR")
    assert overpaid_of({OVERPAID_KEY: excess.to_json()}) == excess
    assert overpaid_of({}) is None
    assert overpaid_of({OVERPAID_KEY: {"msat": -1, "credited": 0, "currency": "EUR"}}) is None
    assert overpaid_of({OVERPAID_KEY: {"msat": True, "credited": 0, "currency": "EUR"}}) is None


def test_the_invoice_says_the_excess_is_not_part_of_it() -> None:
    note = invoice_note(Overpaid(msat=1_239_000, credited=123, currency="EUR"), "EUR 1.23")
    assert "1239000 msat more" in note and "EUR 1.23 was added" in note
    assert "not part of this invoice" in note
    assert "too little" in invoice_note(Overpaid(msat=9, credited=0, currency="EUR"), "EUR 0.00")
