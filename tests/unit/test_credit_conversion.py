"""domain.credit_conversion: credit valued in another currency, exact through BTC, floored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.account_credit import MAX_NOTE
from domain.credit_conversion import convert_at, convert_down, noted
from domain.errors import NoExchangeRate
from domain.exchange import ExchangeRate, RateTable
from domain.money import Currency, Money

NOW = datetime(2026, 1, 31, 12, tzinfo=UTC)
EUR, GBP, USD, BTC = Currency.EUR, Currency.GBP, Currency.USD, Currency.BTC
TABLE = RateTable.of(
    [
        ExchangeRate(EUR, Decimal(100_000), NOW),
        ExchangeRate(GBP, Decimal(80_000), NOW),
        ExchangeRate(USD, Decimal("110000.5"), NOW),
    ]
)


def test_fiat_to_fiat_goes_through_both_btc_rates_and_rounds_down() -> None:
    got = convert_down([Money(GBP, 102)], EUR, TABLE, NOW)
    assert got.money == Money(EUR, 127)  # 102 × 100 000 / 80 000 = 127.5
    assert got.rates == ((EUR, Decimal(100_000)), (GBP, Decimal(80_000)))
    assert got.note == "GBP 1.02 as EUR 1.27 at BTC/EUR 100000, BTC/GBP 80000 (exact, rounded down)"


def test_parts_are_summed_exactly_then_floored_once() -> None:
    """Two GBP halves of a cent are worth 0.625 + 0.625 EUR cents: 1, not 0 + 0."""
    got = convert_down([Money(GBP, 1), Money(EUR, 0), Money(GBP, 0)], EUR, TABLE, NOW)
    assert got.money.amount == 1
    got = convert_down([Money(EUR, 5), Money(GBP, 1)], EUR, TABLE, NOW)
    assert got.money.amount == 6 and got.parts == ((EUR, 5), (GBP, 1))


def test_fiat_to_bitcoin_and_back_in_msat() -> None:
    to_btc = convert_down([Money(EUR, 132)], BTC, TABLE, NOW)
    assert to_btc.money == Money(BTC, 1_320_000) and to_btc.rates == ((EUR, Decimal(100_000)),)
    assert to_btc.note is not None and "EUR 1.32 as 1320000 msat" in to_btc.note
    back = convert_down([Money(BTC, 1_329_999)], EUR, TABLE, NOW)
    assert back.money == Money(EUR, 132)  # 132.9999 cents, down


def test_nothing_to_convert_reads_no_rate_and_says_nothing() -> None:
    got = convert_down([Money(EUR, 100), Money(EUR, 20)], EUR, None, NOW)
    assert got.money == Money(EUR, 120) and got.rates == () and got.note is None


def test_a_missing_or_stale_rate_refuses_the_value() -> None:
    with pytest.raises(NoExchangeRate, match="JPY"):
        convert_down([Money(Currency.JPY, 100)], EUR, TABLE, NOW)
    with pytest.raises(NoExchangeRate, match="stale"):
        convert_down([Money(GBP, 100)], EUR, TABLE, NOW + timedelta(hours=1))
    with pytest.raises(NoExchangeRate):
        convert_down([Money(GBP, 100)], EUR, None, NOW)


@given(st.integers(0, 10**12), st.sampled_from([EUR, GBP, USD, BTC]))
def test_never_more_than_the_exact_value_and_less_by_under_one_unit(
    amount: int, target: Currency
) -> None:
    got = convert_down([Money(USD, amount)], target, TABLE, NOW).money.amount
    rate = {EUR: Fraction(100_000), GBP: Fraction(80_000), USD: Fraction("110000.5")}
    per_btc = Fraction(10**11, 100) if target is BTC else rate[target]
    exact = amount * per_btc / rate[USD] if target is not USD else Fraction(amount)
    assert got <= exact < got + 1


def test_stored_rates_convert_and_a_missing_one_is_none() -> None:
    rates = {EUR: Decimal(100_000), GBP: Decimal(70_000)}
    got = convert_at([Money(GBP, 132)], EUR, rates)
    assert got is not None and got.money == Money(EUR, 188)  # 188.57…
    assert convert_at([Money(GBP, 132)], EUR, {EUR: Decimal(100_000)}) is None
    assert convert_at([Money(GBP, 132)], EUR, {**rates, GBP: Decimal(0)}) is None


def test_a_long_reason_is_cut_so_the_conversion_always_fits_the_note() -> None:
    converted = convert_down([Money(GBP, 102)], EUR, TABLE, NOW)
    assert converted.note is not None
    note = noted("x" * 400, converted)
    assert len(note) == MAX_NOTE and note.endswith("; " + converted.note)
    same = convert_down([Money(EUR, 1)], EUR, None, NOW)
    assert noted("y" * 400, same) == "y" * MAX_NOTE
