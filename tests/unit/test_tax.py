"""Tax on the charged amount: floor(amount × rate / 100), any ISO country form (D3)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.tax import (
    ALPHA2_TO_ALPHA3,
    ALPHA3_TO_ALPHA2,
    NO_TAX,
    InvalidTaxRate,
    TaxRates,
    country_alpha3,
    tax_on,
)

IRL_23 = TaxRates.from_config({"IE": Decimal(23)})


@pytest.mark.parametrize("country", ["IRL", "IE", "irl", "ie", "Irl", " ie "])
def test_e1_lightning_tax_is_303600_for_ireland_in_any_code_form(country: str) -> None:
    assert IRL_23.tax_for(1_320_000, country) == 303_600


def test_e5_tax_is_recomputed_on_the_three_month_amount() -> None:
    assert IRL_23.tax_for(3_960_000, "IRL") == 910_800


@pytest.mark.parametrize("key", ["IE", "IRL", "ie", "irl"])
def test_config_keys_may_be_alpha2_or_alpha3(key: str) -> None:
    rates = TaxRates.from_config({key: "23"})
    assert rates.by_alpha3 == {"IRL": Decimal(23)}


@pytest.mark.parametrize("country", [None, "", "XX", "ZZZ", "USA", "Ireland", "I"])
def test_unknown_absent_or_unconfigured_country_pays_no_tax(country: str | None) -> None:
    assert IRL_23.tax_for(1_320_000, country) == 0


def test_tax_is_floored_not_rounded() -> None:
    # 999 × 23 / 100 = 229.77 → 229
    assert IRL_23.tax_for(999, "IE") == 229


def test_fractional_rate_is_exact_decimal_not_float() -> None:
    # 7.7 % of 1000 is exactly 77; an f32 7.7 (7.6999998…) would give 76
    rates = TaxRates.from_config({"CH": "7.7"})
    assert rates.tax_for(1000, "CHE") == 77


def test_tax_on_huge_amount_is_exact() -> None:
    amount = 10**30 + 1
    assert tax_on(amount, Decimal("23")) == (amount * 23) // 100


def test_no_tax_table_is_zero_everywhere() -> None:
    assert NO_TAX.tax_for(10**12, "IRL") == 0


def test_negative_amount_is_refused() -> None:
    with pytest.raises(InvalidInput):
        IRL_23.tax_for(-1, "IE")


@pytest.mark.parametrize(
    "entries",
    [
        {"XX": Decimal(5)},
        {"UK": Decimal(20)},
        {"IE": Decimal(-1)},
        {"IE": "abc"},
        {"IE": "NaN"},
        {"IE": "Infinity"},
        {"IE": True},
        {"IE": None},
        {"IE": Decimal(23), "IRL": Decimal(21)},
    ],
)
def test_bad_tax_config_is_refused(entries: dict[str, object]) -> None:
    with pytest.raises(InvalidTaxRate):
        TaxRates.from_config(entries)


def test_same_rate_given_as_alpha2_and_alpha3_is_accepted() -> None:
    rates = TaxRates.from_config({"IE": Decimal(23), "IRL": "23"})
    assert rates.rate_for("ie") == Decimal(23)


def test_iso_table_is_complete_and_one_to_one() -> None:
    assert len(ALPHA2_TO_ALPHA3) == 249
    assert len(ALPHA3_TO_ALPHA2) == 249
    assert all(len(a2) == 2 and len(a3) == 3 for a2, a3 in ALPHA2_TO_ALPHA3.items())
    spot_checks = {"IE": "IRL", "DE": "DEU", "GB": "GBR", "US": "USA", "CH": "CHE"}
    spot_checks |= {"GS": "SGS", "KM": "COM", "PM": "SPM", "YT": "MYT", "TF": "ATF"}
    for a2, a3 in spot_checks.items():
        assert ALPHA2_TO_ALPHA3[a2] == a3
        assert ALPHA3_TO_ALPHA2[a3] == a2


def test_country_alpha3_normalises_both_forms() -> None:
    assert country_alpha3("de") == "DEU"
    assert country_alpha3("deu") == "DEU"
    assert country_alpha3("DEX") is None
    assert country_alpha3(None) is None


@given(
    amount=st.integers(min_value=0, max_value=10**18),
    rate=st.decimals(min_value=0, max_value=100, places=3, allow_nan=False),
)
def test_tax_is_never_negative_and_never_exceeds_the_amount(amount: int, rate: Decimal) -> None:
    tax = tax_on(amount, rate)
    assert 0 <= tax <= amount


@given(
    amount=st.integers(min_value=0, max_value=10**18),
    rate=st.decimals(min_value=0, max_value=1000, places=3, allow_nan=False),
)
def test_tax_is_the_exact_floor(amount: int, rate: Decimal) -> None:
    tax = tax_on(amount, rate)
    exact_times_100 = Decimal(amount) * rate  # exact: finite decimals multiply exactly here
    assert tax * 100 <= exact_times_100 < (tax + 1) * 100
