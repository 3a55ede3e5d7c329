"""Stored hundredths to a card provider's unit and back: whole yen, cents, refusals."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from adapters.fiat.revolut import revolut_units
from adapters.fiat.stripe_amounts import STRIPE_MINIMUM, stripe_amount, stripe_units
from adapters.fiat.units import ProviderUnits, units_for
from domain.money import Currency
from ports.fiat import FiatBelowMinimum, FiatCurrencyNotChargeable

CARD_CURRENCIES = [c.value for c in Currency if c.is_fiat]
UnitsOf = Callable[[str], ProviderUnits]


@pytest.mark.parametrize("units_of", [stripe_units, revolut_units])
def test_yen_are_counted_whole_every_other_catalogue_currency_in_cents(
    units_of: UnitsOf,
) -> None:
    for code in CARD_CURRENCIES:
        units = units_of(code)
        whole = code == "JPY"
        assert units.decimals == (0 if whole else 2), code
        assert units.to_provider(150_000) == (1_500 if whole else 150_000), code


@pytest.mark.parametrize("units_of", [stripe_units, revolut_units])
def test_rounding_never_charges_less_and_less_than_one_unit_more(units_of: UnitsOf) -> None:
    for code in ("JPY", "EUR"):
        units = units_of(code)
        for asked in range(1, 1_001):
            charged = units.to_hundredths(units.to_provider(asked))
            assert asked <= charged < asked + units.step, (code, asked)
        for whole in (100, 168_300, 10**12):  # a whole provider unit goes exactly
            assert units.to_hundredths(units.to_provider(whole)) == whole


def test_an_amount_read_back_from_the_provider_converts_the_same_way() -> None:
    assert stripe_units("JPY").to_hundredths(1_684) == 168_400
    assert stripe_units("EUR").to_hundredths(1_684) == 1_684


@pytest.mark.parametrize("units_of", [stripe_units, revolut_units])
def test_every_catalogue_fiat_currency_is_chargeable_and_nothing_else(units_of: UnitsOf) -> None:
    for member in Currency:
        if member.is_fiat:
            assert units_of(member.value.lower()).currency == member.value
        else:
            with pytest.raises(FiatCurrencyNotChargeable, match="cannot charge BTC"):
                units_of(member.value)
    # Stripe's special cases and three-decimal currencies, an unknown code, half a code
    for code in ("HUF", "ISK", "TWD", "UGX", "KWD", "BHD", "XYZ", "eu"):
        with pytest.raises(FiatCurrencyNotChargeable, match=f"cannot charge {code.upper()}"):
            units_of(code)


def test_stripe_knows_its_smallest_charge_in_every_catalogue_currency() -> None:
    for code in CARD_CURRENCIES:
        units = stripe_units(code)
        with pytest.raises(FiatBelowMinimum) as exc:
            stripe_amount(units.to_hundredths(STRIPE_MINIMUM[code] - 1), code)
        assert exc.value.minimum_minor == units.to_hundredths(STRIPE_MINIMUM[code]), code
        assert stripe_amount(exc.value.minimum_minor, code)[1] == STRIPE_MINIMUM[code]


def test_a_currency_code_is_read_case_blind() -> None:
    assert stripe_units("jpy") == ProviderUnits("Stripe", "JPY", 0)


def test_a_provider_unit_finer_than_ours_is_refused() -> None:
    with pytest.raises(ValueError):
        ProviderUnits("X", "KWD", 3)
    with pytest.raises(FiatCurrencyNotChargeable):
        units_for("X", "KWD")


@pytest.mark.parametrize(
    ("asked", "currency", "sent"),
    [
        (50, "EUR", 50),
        (30, "GBP", 30),
        (5_000, "JPY", 50),
        (4_901, "JPY", 50),
        (12_345, "USD", 12_345),
    ],
)
def test_stripe_takes_its_minimum_and_more(asked: int, currency: str, sent: int) -> None:
    assert stripe_amount(asked, currency)[1] == sent


@pytest.mark.parametrize(
    ("asked", "currency", "minimum", "text"),
    [
        (49, "EUR", 50, "EUR 0.50"),
        (20, "EUR", 50, "EUR 0.50"),
        (29, "GBP", 30, "GBP 0.30"),
        (49, "CHF", 50, "CHF 0.50"),
        (4_900, "JPY", 5_000, "JPY 50.00"),
    ],
)
def test_stripe_refuses_less_than_its_minimum(
    asked: int, currency: str, minimum: int, text: str
) -> None:
    with pytest.raises(FiatBelowMinimum, match=f"less than {text}") as exc:
        stripe_amount(asked, currency)
    assert (exc.value.amount_minor, exc.value.minimum_minor) == (asked, minimum)
