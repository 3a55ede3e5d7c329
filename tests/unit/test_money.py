"""Currencies, non-negative integer amounts and satoshi rounding (pricing.md §1, D1)."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import CurrencyMismatch, InvalidInput, NegativeAmount, UnknownCurrency
from domain.limits import MAX_CHARGE, MAX_PRICE, ChargeTooLarge, check_charge, check_price
from domain.money import (
    MSAT_PER_BTC,
    Currency,
    Money,
    ceil_int,
    currency_code,
    floor_int,
    round_half_up,
    round_msat_up_to_sat,
)

amounts = st.integers(min_value=0, max_value=2**64 - 1)
currencies = st.sampled_from(list(Currency))


@pytest.mark.parametrize("text", ["eur", "EUR", "Eur", "eUR"])
def test_currency_parsing_ignores_case(text: str) -> None:
    assert Currency.parse(text) is Currency.EUR


def test_every_supported_currency_parses_from_its_code() -> None:
    codes = ["EUR", "BTC", "USD", "GBP", "CAD", "CHF", "AUD", "JPY"]
    assert [c.value for c in Currency] == codes
    assert [Currency.parse(c.lower()) for c in codes] == list(Currency)


@pytest.mark.parametrize("text", ["", "XBT", "euro", "EU", "SAT", "msat"])
def test_unknown_currency_is_a_named_input_error(text: str) -> None:
    with pytest.raises(UnknownCurrency, match="unknown currency"):
        Currency.parse(text)
    assert issubclass(UnknownCurrency, InvalidInput)


def test_non_text_currency_is_unknown_not_a_crash() -> None:
    with pytest.raises(UnknownCurrency):
        Currency.parse(None)  # type: ignore[arg-type]


def test_a_currency_code_is_read_as_parsing_reads_it_or_is_none() -> None:
    assert [currency_code(t) for t in ("eur", " usd\t", "BTC")] == ["EUR", "USD", "BTC"]
    assert [currency_code(t) for t in ("", "XBT", "e ur")] == [None, None, None]


def test_btc_counts_millisatoshi_and_every_fiat_counts_hundredths_jpy_too() -> None:
    assert Currency.BTC.minor_per_major == 100_000_000_000
    assert not Currency.BTC.is_fiat
    for cur in Currency:
        if cur is not Currency.BTC:
            assert cur.is_fiat
            assert cur.minor_per_major == 100
    assert Currency.JPY.minor_per_major == 100


def test_money_accepts_zero_and_large_integers() -> None:
    assert Money(Currency.EUR, 0).amount == 0
    assert Money(Currency.BTC, 2**64 - 1).amount == 2**64 - 1
    assert Money.zero(Currency.USD) == Money(Currency.USD, 0)


@pytest.mark.parametrize("bad", [1.5, 1.0, Decimal("1"), "100", None, True, False])
def test_money_amount_must_be_an_int_and_not_a_bool(bad: object) -> None:
    with pytest.raises(TypeError):
        Money(Currency.EUR, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, -(2**70)])
def test_money_is_never_negative(bad: int) -> None:
    with pytest.raises(NegativeAmount):
        Money(Currency.EUR, bad)


def test_money_is_immutable() -> None:
    m = Money(Currency.EUR, 5)
    with pytest.raises(AttributeError):
        m.amount = 6  # type: ignore[misc]


def test_adding_same_currency_sums_amounts() -> None:
    assert Money(Currency.EUR, 150) + Money(Currency.EUR, 25) == Money(Currency.EUR, 175)


def test_combining_different_currencies_is_refused() -> None:
    with pytest.raises(CurrencyMismatch, match="Currency doesnt match"):
        Money(Currency.EUR, 1) + Money(Currency.USD, 1)
    with pytest.raises(CurrencyMismatch):
        Money(Currency.EUR, 1) - Money(Currency.BTC, 1)


def test_subtraction_down_to_zero_is_allowed() -> None:
    assert Money(Currency.EUR, 100) - Money(Currency.EUR, 100) == Money(Currency.EUR, 0)
    assert Money(Currency.EUR, 100) - Money(Currency.EUR, 1) == Money(Currency.EUR, 99)


def test_subtraction_below_zero_raises_the_reference_underflow_message() -> None:
    with pytest.raises(NegativeAmount) as caught:
        Money(Currency.EUR, 100) - Money(Currency.EUR, 250)
    assert caught.value.message == "Subtraction would underflow: EUR 1.00 - EUR 2.50"


def test_times_scales_and_refuses_negative_or_non_int_factors() -> None:
    assert Money(Currency.EUR, 3800).times(3) == Money(Currency.EUR, 11400)
    assert Money(Currency.EUR, 3800).times(0) == Money(Currency.EUR, 0)
    with pytest.raises(NegativeAmount):
        Money(Currency.EUR, 1).times(-1)
    with pytest.raises(TypeError):
        Money(Currency.EUR, 1).times(True)
    with pytest.raises(TypeError):
        Money(Currency.EUR, 1).times(Decimal(2))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("money", "shown"),
    [
        (Money(Currency.EUR, 132), "EUR 1.32"),
        (Money(Currency.USD, 2000), "USD 20.00"),
        (Money(Currency.EUR, 0), "EUR 0.00"),
        (Money(Currency.EUR, 5), "EUR 0.05"),
        (Money(Currency.JPY, 100), "JPY 1.00"),
        (Money(Currency.BTC, 1000), "BTC 0.00000001"),
        (Money(Currency.BTC, MSAT_PER_BTC), "BTC 1.00000000"),
        (Money(Currency.BTC, 38_000_000), "BTC 0.00038000"),
        (Money(Currency.BTC, 0), "BTC 0.00000000"),
        (Money(Currency.BTC, 499), "BTC 0.00000000"),
        (Money(Currency.BTC, 500), "BTC 0.00000001"),
        (Money(Currency.GBP, 123_456_789), "GBP 1234567.89"),
    ],
)
def test_display_uses_code_and_two_or_eight_decimals(money: Money, shown: str) -> None:
    assert str(money) == shown


def test_display_and_major_value_do_not_depend_on_the_decimal_context() -> None:
    huge = Money(Currency.BTC, 10**40)
    with localcontext() as ctx:
        ctx.prec = 3
        assert str(Money(Currency.EUR, 123_456)) == "EUR 1234.56"
        assert Money(Currency.EUR, 123_456).to_major() == Decimal("1234.56")
        assert huge.to_major() == Decimal(10**29)
    assert str(huge) == "BTC " + str(10**29) + ".00000000"


def test_to_major_is_exact() -> None:
    assert Money(Currency.EUR, 132).to_major() == Decimal("1.32")
    assert Money(Currency.BTC, 1).to_major() == Decimal("0.00000000001")
    assert Money(Currency.BTC, MSAT_PER_BTC).to_major() == Decimal(1)


@pytest.mark.parametrize(
    ("msat", "rounded"),
    [(0, 0), (1, 1000), (999, 1000), (1000, 1000), (1001, 2000), (38_000_001, 38_001_000)],
)
def test_msat_round_up_to_whole_sat(msat: int, rounded: int) -> None:
    assert round_msat_up_to_sat(msat) == rounded


@given(amounts)
def test_sat_rounding_never_underpays_and_adds_less_than_one_sat(msat: int) -> None:
    rounded = round_msat_up_to_sat(msat)
    assert rounded % 1000 == 0
    assert msat <= rounded < msat + 1000


@pytest.mark.parametrize(
    ("value", "half_up", "floor", "ceil"),
    [
        ("2.5", 3, 2, 3),
        ("2.4999999999999999999999999999999", 2, 2, 3),
        ("0.5", 1, 0, 1),
        ("7", 7, 7, 7),
        ("-2.5", -3, -3, -2),
    ],
)
def test_integer_rounding_helpers(value: str, half_up: int, floor: int, ceil: int) -> None:
    d = Decimal(value)
    assert (round_half_up(d), floor_int(d), ceil_int(d)) == (half_up, floor, ceil)


@given(currencies, amounts, amounts)
def test_sums_and_differences_are_never_negative(cur: Currency, a: int, b: int) -> None:
    x, y = Money(cur, a), Money(cur, b)
    assert (x + y).amount == a + b >= 0
    hi, lo = (x, y) if a >= b else (y, x)
    assert (hi - lo).amount >= 0
    if a != b:
        with pytest.raises(NegativeAmount):
            lo - hi


@given(currencies, amounts)
def test_display_shows_the_major_value_fiat_exact_btc_to_the_sat(cur: Currency, a: int) -> None:
    money = Money(cur, a)
    code, number = str(money).split(" ")
    assert code == cur.value
    if cur is Currency.BTC:
        assert Decimal(number) * 100_000_000 == (a + 500) // 1000
    else:
        assert Decimal(number) == money.to_major()


def test_a_charge_above_the_payment_ceiling_is_refused_unprocessable() -> None:
    """Checked on every priced payment before any rail or table sees it (422, not a 500)."""
    check_charge(MAX_CHARGE - 2, 1, 1)
    with pytest.raises(ChargeTooLarge, match="too large") as err:
        check_charge(MAX_CHARGE, 1, 0)
    assert err.value.kind == "unprocessable"
    # the worst same-currency quote: 120 intervals of the largest price, 100 % tax, a fee
    worst = 120 * MAX_PRICE
    check_charge(worst, worst, worst)
    assert MAX_CHARGE < 2**63 - 1


def test_a_price_is_a_whole_number_up_to_the_ceiling() -> None:
    assert check_price(MAX_PRICE, "amount") == MAX_PRICE
    for bad in (MAX_PRICE + 1, -1, 2**64 - 1, True, 1.0):
        with pytest.raises(InvalidInput, match="amount must be a whole number from 0 to"):
            check_price(bad, "amount")
