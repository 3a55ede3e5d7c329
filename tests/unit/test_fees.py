"""Processing fee: exact gross-up, base fee converted into the charged currency (§9, D4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.enums import PaymentMethod
from domain.errors import InvalidProcessingFeeRate, NoExchangeRate
from domain.exchange import ExchangeRate, RateTable
from domain.fees import (
    MisconfiguredProcessingFee,
    gross_up_fee,
    processing_fee,
    validate_fee_config,
    validate_fee_rate,
)
from domain.model import PaymentMethodConfig
from domain.money import Currency, Money

NOW = datetime(2026, 6, 17, tzinfo=UTC)
RATES = RateTable.of(
    [
        ExchangeRate(Currency.EUR, Decimal(100_000), NOW),
        ExchangeRate(Currency.USD, Decimal(110_000), NOW),
    ]
)
T = TypeVar("T")


def revolut_config(
    rate: str | None = "2.8",
    base: int | None = 20,
    currency: str | None = "EUR",
    enabled: bool = True,
    method: PaymentMethod = PaymentMethod.REVOLUT,
) -> PaymentMethodConfig:
    return PaymentMethodConfig(
        id=1,
        company_id=1,
        payment_method=method,
        name="revolut",
        enabled=enabled,
        provider_type="revolut",
        config={},
        created=NOW,
        modified=NOW,
        processing_fee_rate=None if rate is None else Decimal(rate),
        processing_fee_base=base,
        processing_fee_currency=currency,
    )


def fee(amount: Money, config: PaymentMethodConfig | None, method: PaymentMethod) -> int:
    return processing_fee(amount, method, config, RATES, NOW).amount


def test_e3_revolut_fee_on_990_cents_is_29_plus_21() -> None:
    # exact: ceil(990·0.028/0.972) = ceil(28.518…) = 29; ceil(20/0.972) = ceil(20.576…) = 21
    assert fee(Money(Currency.EUR, 990), revolut_config(), PaymentMethod.REVOLUT) == 50


def test_e3_revolut_fee_on_132_cents_is_4_plus_21() -> None:
    # ceil(132·0.028/0.972) = ceil(3.802…) = 4; + 21
    assert fee(Money(Currency.EUR, 132), revolut_config(), PaymentMethod.REVOLUT) == 25


def test_fee_is_in_the_charged_currency() -> None:
    result = processing_fee(
        Money(Currency.EUR, 990), PaymentMethod.REVOLUT, revolut_config(), RATES, NOW
    )
    assert result == Money(Currency.EUR, 50)


def test_exact_integer_quotient_is_not_rounded_up() -> None:
    # 2.5 %: 975·0.025/0.975 = 25 exactly → 25, not 26; base 39/0.975 = 40 exactly
    assert gross_up_fee(975, Decimal("2.5"), 39) == 65


def test_lightning_never_pays_a_processing_fee() -> None:
    config = revolut_config(method=PaymentMethod.LIGHTNING)
    assert fee(Money(Currency.BTC, 1_320_000), config, PaymentMethod.LIGHTNING) == 0


@pytest.mark.parametrize(
    "config",
    [
        None,
        revolut_config(enabled=False),
        revolut_config(rate=None),
        revolut_config(base=None),
    ],
)
def test_no_usable_config_means_no_fee(config: PaymentMethodConfig | None) -> None:
    assert fee(Money(Currency.EUR, 990), config, PaymentMethod.REVOLUT) == 0


def test_zero_rate_adds_the_base_unchanged() -> None:
    assert fee(Money(Currency.EUR, 990), revolut_config(rate="0"), PaymentMethod.REVOLUT) == 20


@pytest.mark.parametrize("currency", [None, "", "  ", "XYZ"])
def test_missing_or_unknown_base_currency_means_the_charged_currency(
    currency: str | None,
) -> None:
    config = revolut_config(currency=currency)
    assert fee(Money(Currency.USD, 990), config, PaymentMethod.REVOLUT) == 50


def test_base_fee_is_converted_into_the_charged_currency() -> None:
    # 20 EUR-cents at BTC/EUR 100 000 = 200 000 msat; at BTC/USD 110 000 = 22 USD-cents
    # then ceil(22/0.972) = 23; percentage part on 990 is 29
    config = revolut_config(currency="eur")
    assert fee(Money(Currency.USD, 990), config, PaymentMethod.REVOLUT) == 29 + 23


def test_base_fee_conversion_without_a_rate_is_an_error() -> None:
    config = revolut_config(currency="GBP")
    with pytest.raises(NoExchangeRate):
        fee(Money(Currency.EUR, 990), config, PaymentMethod.REVOLUT)


def test_stale_rate_for_base_conversion_is_an_error() -> None:
    config = revolut_config(currency="USD")
    later = NOW + timedelta(hours=1)
    with pytest.raises(NoExchangeRate):
        processing_fee(Money(Currency.EUR, 990), PaymentMethod.REVOLUT, config, RATES, later)


def test_config_for_another_method_is_a_bug() -> None:
    config = revolut_config(method=PaymentMethod.STRIPE)
    with pytest.raises(ValueError):
        fee(Money(Currency.EUR, 990), config, PaymentMethod.REVOLUT)


@pytest.mark.parametrize("rate", ["100", "100.0", "150", "-0.1", "-5"])
def test_rate_of_100_percent_or_more_or_negative_is_refused(rate: str) -> None:
    with pytest.raises(InvalidProcessingFeeRate):
        validate_fee_rate(Decimal(rate))


@pytest.mark.parametrize("rate", ["0", "2.8", "99.999"])
def test_rates_from_0_to_below_100_are_accepted(rate: str) -> None:
    assert validate_fee_rate(Decimal(rate)) == Decimal(rate)


def test_no_rate_is_accepted() -> None:
    assert validate_fee_rate(None) is None


@pytest.mark.parametrize(
    ("rate", "base", "currency"),
    [("NaN", 20, "EUR"), ("2.8", -1, "EUR"), ("2.8", 20, "DOGE"), ("100", 0, None)],
)
def test_bad_fee_config_is_refused_when_saved(rate: str, base: int, currency: str | None) -> None:
    with pytest.raises(InvalidProcessingFeeRate):
        validate_fee_config(Decimal(rate), base, currency)


def test_good_fee_config_is_accepted_when_saved() -> None:
    validate_fee_config(Decimal("2.8"), 20, "eur")
    validate_fee_config(None, None, None)


def test_stored_rate_of_100_percent_fails_loudly_when_pricing() -> None:
    config = revolut_config(rate="100")
    with pytest.raises(MisconfiguredProcessingFee) as caught:
        fee(Money(Currency.EUR, 990), config, PaymentMethod.REVOLUT)
    assert caught.value.kind == "unprocessable"


@given(
    amount=st.integers(min_value=0, max_value=10**15),
    rate=st.decimals(min_value=0, max_value="99.99", places=2, allow_nan=False),
    base=st.integers(min_value=0, max_value=10**6),
)
def test_fee_is_never_negative_and_nets_the_operator_the_amount(
    amount: int, rate: Decimal, base: int
) -> None:
    charged = gross_up_fee(amount, rate, base)
    assert charged >= 0
    r = Fraction(rate) / 100
    # after the provider keeps r of (amount + fee), the operator keeps at least amount + base
    assert (amount + charged) * (1 - r) >= amount + base
    # and the gross-up overshoots by less than two units (one per ceiling)
    assert (amount + charged - 2) * (1 - r) < amount + base
