"""Exchange rates and the charged currency per payment method (pricing.md §1.6–1.7, D2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.enums import PaymentMethod
from domain.errors import InvalidInput, NoExchangeRate, PaymentMethodUnsupported
from domain.exchange import (
    DEFAULT_MAX_RATE_AGE,
    PASSTHROUGH_RATE,
    ExchangeRate,
    RateTable,
    charge_amount,
    charged_currency,
    convert,
    fiat_to_msat,
    msat_to_fiat,
)
from domain.money import Currency, Money

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EUR_RATE = Decimal(100_000)


def table(*rates: tuple[Currency, Decimal], age: timedelta = timedelta(0)) -> RateTable:
    return RateTable.of(ExchangeRate(cur, rate, NOW - age) for cur, rate in rates)


EUR_TABLE = table((Currency.EUR, EUR_RATE))


# --- D2 conversions -----------------------------------------------------------------------


def test_eur_38_at_100k_is_exactly_38_million_msat_not_the_f32_38_001_000() -> None:
    assert fiat_to_msat(3800, EUR_RATE) == 38_000_000


def test_one_cent_at_100k_per_btc_is_ten_sat() -> None:
    assert fiat_to_msat(1, EUR_RATE) == 10_000


@pytest.mark.parametrize(
    ("cents", "rate", "msat"),
    [
        (1, "400000000", 3),  # 2.5 msat → 3 (half-up, not banker's 2)
        (1, "2000000000", 1),  # 0.5 msat → 1
        (3, "2000000000", 2),  # 1.5 msat → 2
        (1, "400000001", 2),  # 2.49999… msat → 2
        (1, "399999999", 3),  # 2.50000… msat → 3
        (1, "3000000000", 0),  # 0.333… msat → 0
        (2, "3000000000", 1),  # 0.666… msat → 1
    ],
)
def test_fiat_to_msat_rounds_half_up_to_a_whole_msat(cents: int, rate: str, msat: int) -> None:
    assert fiat_to_msat(cents, Decimal(rate)) == msat


def test_fiat_to_msat_is_exact_even_beyond_28_significant_digits() -> None:
    """A Decimal division keeps 28 digits and would round 0.4999…(30 nines) up to 0.5 → 1."""
    rate = Decimal("2000000000.0000000000000000000001")
    assert fiat_to_msat(1, rate) == 0
    assert msat_to_fiat(500_000_000, Decimal("0.99999999999999999999999999999999")) == 0


def test_conversions_do_not_depend_on_the_decimal_context() -> None:
    with localcontext() as ctx:
        ctx.prec = 4
        assert fiat_to_msat(3800, Decimal("97123.45")) == 39_125_464
        assert msat_to_fiat(39_125_464, Decimal("97123.45")) == 3800


@pytest.mark.parametrize(
    ("msat", "rate", "cents"),
    [
        (38_000_000, "100000", 3800),
        (25_000, "100000", 3),  # 2.5 cents → 3
        (24_999, "100000", 2),
        (15_000, "100000", 2),  # 1.5 cents → 2
        (14_999, "100000", 1),
        (5_000, "100000", 1),  # 0.5 cent → 1
        (4_999, "100000", 0),
        (0, "100000", 0),
    ],
)
def test_msat_to_fiat_rounds_half_up_to_the_minor_unit(msat: int, rate: str, cents: int) -> None:
    assert msat_to_fiat(msat, Decimal(rate)) == cents


REALISTIC_RATES = st.decimals(
    min_value=Decimal(1000), max_value=Decimal(10_000_000), places=2, allow_nan=False
)
TINY_RATES = st.decimals(
    min_value=Decimal("0.00000001"), max_value=Decimal(1000), places=8, allow_nan=False
)
HUGE_RATES = st.decimals(
    min_value=Decimal(10**9), max_value=Decimal(10**15), places=0, allow_nan=False
)
fiat_amounts = st.integers(min_value=0, max_value=10**12)


@given(fiat_amounts, REALISTIC_RATES)
def test_fiat_btc_fiat_round_trip_is_exact_for_realistic_rates(cents: int, rate: Decimal) -> None:
    """Within one minor unit is the brief; the real bound below 10⁹ per BTC is zero."""
    assert msat_to_fiat(fiat_to_msat(cents, rate), rate) == cents


@given(fiat_amounts, TINY_RATES)
def test_fiat_btc_fiat_round_trip_is_exact_for_tiny_rates(cents: int, rate: Decimal) -> None:
    assert msat_to_fiat(fiat_to_msat(cents, rate), rate) == cents


@given(fiat_amounts, HUGE_RATES)
def test_round_trip_error_at_huge_rates_is_bounded_by_half_a_msat_in_fiat(
    cents: int, rate: Decimal
) -> None:
    """At r fiat/BTC half a msat is r/(2·10⁹) minor units, so |error| ≤ r/(2·10⁹) + ½."""
    back = msat_to_fiat(fiat_to_msat(cents, rate), rate)
    assert 2 * 10**9 * abs(back - cents) <= rate + 10**9


def test_one_minor_unit_bound_breaks_only_above_a_billion_per_btc() -> None:
    assert msat_to_fiat(fiat_to_msat(1, Decimal(10**10)), Decimal(10**10)) == 0
    assert msat_to_fiat(fiat_to_msat(10, Decimal(10**11)), Decimal(10**11)) == 0


@given(fiat_amounts, REALISTIC_RATES)
def test_lightning_charge_in_whole_sat_never_underpays_and_overpays_at_most_r_over_1e6(
    cents: int, rate: Decimal
) -> None:
    charged = charge_amount(
        Money(Currency.EUR, cents),
        PaymentMethod.LIGHTNING,
        table((Currency.EUR, rate)),
        NOW,
    )
    back = msat_to_fiat(charged.money.amount, rate)
    assert charged.money.amount % 1000 == 0
    assert cents <= back
    assert (back - cents) * 10**6 <= rate + 10**6


# --- charged amount per payment method ---------------------------------------------------


def test_lightning_charges_fiat_list_price_in_msat_rounded_up_to_whole_sat_with_the_rate() -> None:
    charged = charge_amount(Money(Currency.EUR, 3800), PaymentMethod.LIGHTNING, EUR_TABLE, NOW)
    assert charged.money == Money(Currency.BTC, 38_000_000)
    assert charged.rate == EUR_RATE


def test_lightning_rounds_a_fractional_sat_up() -> None:
    rate = Decimal("97123.45")  # 3800 cents → 39 125 463.52… msat → 39 125 464
    charged = charge_amount(
        Money(Currency.EUR, 3800),
        PaymentMethod.LIGHTNING,
        table((Currency.EUR, rate)),
        NOW,
    )
    assert charged.money == Money(Currency.BTC, 39_126_000)
    assert charged.rate == rate


def test_lightning_btc_list_price_passes_through_rounded_up_to_sat_with_rate_one() -> None:
    charged = charge_amount(
        Money(Currency.BTC, 1_000_001), PaymentMethod.LIGHTNING, RateTable(), NOW
    )
    assert charged.money == Money(Currency.BTC, 1_001_000)
    assert charged.rate == PASSTHROUGH_RATE == Decimal(1)


@pytest.mark.parametrize("method", [PaymentMethod.REVOLUT, PaymentMethod.STRIPE])
@pytest.mark.parametrize("cur", [Currency.EUR, Currency.USD, Currency.JPY])
def test_card_rails_charge_the_list_currency_unchanged_at_rate_one(
    method: PaymentMethod, cur: Currency
) -> None:
    price = Money(cur, 1234)
    charged = charge_amount(price, method, RateTable(), NOW)
    assert charged.money == price
    assert charged.rate == Decimal(1)
    assert charged_currency(cur, method) is cur


@pytest.mark.parametrize(
    ("method", "message"),
    [
        (PaymentMethod.REVOLUT, "Cant get price from BTC to Revolut"),
        (PaymentMethod.STRIPE, "Cant get price from BTC to Stripe"),
        (PaymentMethod.PAYPAL, "Cant get price from BTC to PayPal"),
    ],
)
def test_bitcoin_list_price_cannot_be_charged_on_a_fiat_rail(
    method: PaymentMethod, message: str
) -> None:
    with pytest.raises(PaymentMethodUnsupported) as caught:
        charge_amount(Money(Currency.BTC, 1000), method, EUR_TABLE, NOW)
    assert caught.value.message == message


def test_paypal_cannot_be_priced() -> None:
    with pytest.raises(PaymentMethodUnsupported) as caught:
        charge_amount(Money(Currency.EUR, 1000), PaymentMethod.PAYPAL, EUR_TABLE, NOW)
    assert caught.value.message == "Cant get price from EUR to PayPal"


def test_lightning_always_charges_btc() -> None:
    for cur in Currency:
        assert charged_currency(cur, PaymentMethod.LIGHTNING) is Currency.BTC


# --- missing and stale rates ------------------------------------------------------------


def test_missing_rate_is_no_exchange_rate_with_the_reference_message() -> None:
    with pytest.raises(NoExchangeRate) as caught:
        charge_amount(Money(Currency.USD, 100), PaymentMethod.LIGHTNING, EUR_TABLE, NOW)
    assert caught.value.message == "No exchange rate found for BTC/USD"
    assert caught.value.kind == "unavailable"


def test_stale_rate_is_an_error_never_a_zero_amount() -> None:
    stale = table((Currency.EUR, EUR_RATE), age=DEFAULT_MAX_RATE_AGE + timedelta(seconds=1))
    with pytest.raises(NoExchangeRate, match="stale"):
        charge_amount(Money(Currency.EUR, 3800), PaymentMethod.LIGHTNING, stale, NOW)
    with pytest.raises(NoExchangeRate):
        convert(Money(Currency.EUR, 3800), Currency.BTC, stale, NOW)


def test_rate_exactly_max_age_old_is_still_usable() -> None:
    edge = table((Currency.EUR, EUR_RATE), age=DEFAULT_MAX_RATE_AGE)
    assert edge.btc_rate(Currency.EUR, NOW).rate == EUR_RATE


def test_max_age_is_configurable() -> None:
    rates = RateTable.of(
        [ExchangeRate(Currency.EUR, EUR_RATE, NOW - timedelta(seconds=61))],
        max_age=timedelta(seconds=60),
    )
    with pytest.raises(NoExchangeRate):
        rates.btc_rate(Currency.EUR, NOW)


def test_stale_rate_does_not_block_a_passthrough_charge() -> None:
    stale = table((Currency.EUR, EUR_RATE), age=timedelta(days=1))
    charged = charge_amount(Money(Currency.EUR, 3800), PaymentMethod.REVOLUT, stale, NOW)
    assert charged.money == Money(Currency.EUR, 3800)


@pytest.mark.parametrize("rate", [Decimal(0), Decimal(-1), Decimal("NaN"), Decimal("Infinity")])
def test_a_rate_must_be_a_positive_finite_decimal(rate: Decimal) -> None:
    with pytest.raises(InvalidInput):
        ExchangeRate(Currency.EUR, rate, NOW)


def test_a_rate_is_never_a_float() -> None:
    with pytest.raises(TypeError):
        ExchangeRate(Currency.EUR, 100000, NOW)  # type: ignore[arg-type]


def test_naive_datetimes_are_refused_by_rates() -> None:
    with pytest.raises(InvalidInput):
        ExchangeRate(Currency.EUR, EUR_RATE, datetime(2026, 3, 1))  # noqa: DTZ001
    with pytest.raises(InvalidInput):
        EUR_TABLE.btc_rate(Currency.EUR, datetime(2026, 3, 1))  # noqa: DTZ001


def test_ticker_names_btc_first() -> None:
    assert ExchangeRate(Currency.EUR, EUR_RATE, NOW).ticker == "BTC/EUR"


# --- convert ----------------------------------------------------------------------------


def test_convert_same_currency_is_identity_without_a_rate() -> None:
    m = Money(Currency.EUR, 5)
    assert convert(m, Currency.EUR, RateTable(), NOW) is m


def test_convert_fiat_to_btc_and_back() -> None:
    assert convert(Money(Currency.EUR, 3800), Currency.BTC, EUR_TABLE, NOW) == Money(
        Currency.BTC, 38_000_000
    )
    assert convert(Money(Currency.BTC, 38_000_000), Currency.EUR, EUR_TABLE, NOW) == Money(
        Currency.EUR, 3800
    )


def test_convert_between_two_fiats_goes_through_btc() -> None:
    rates = table((Currency.EUR, EUR_RATE), (Currency.USD, Decimal(110_000)))
    assert convert(Money(Currency.EUR, 1000), Currency.USD, rates, NOW) == Money(Currency.USD, 1100)
    with pytest.raises(NoExchangeRate, match="BTC/GBP"):
        convert(Money(Currency.EUR, 1000), Currency.GBP, rates, NOW)
