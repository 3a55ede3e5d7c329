"""Stripe's unit and smallest charge for each currency, and a stored amount in that unit."""

from __future__ import annotations

from typing import Final

from adapters.fiat.units import ProviderUnits, units_for
from domain.money import Currency, Money
from ports.fiat import FiatBelowMinimum

#: Stripe's zero-decimal currencies: its amounts count whole units (¥500 is 500), where
#: ours count hundredths (docs.stripe.com/currencies, "Zero-decimal currencies").
STRIPE_ZERO_DECIMAL: Final = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
#: currencies Stripe lists as special cases (ISK, HUF, TWD, UGX: two-decimal amounts that
#: must be whole units, or whole for payouts only) or counts in thousandths with a last digit
#: of 0 (BHD JOD KWD OMR TND): none can be priced here, and none is guessed at.
STRIPE_REFUSED: Final = frozenset(["HUF", "ISK", "TWD", "UGX", "BHD", "JOD", "KWD", "OMR", "TND"])
#: Stripe's smallest charge per currency, in Stripe's units (its "Minimum and maximum charge
#: amounts"); it refuses a smaller one with `amount_too_small` on every attempt.
STRIPE_MINIMUM: Final = {
    "USD": 50,
    "AUD": 50,
    "CAD": 50,
    "CHF": 50,
    "EUR": 50,
    "GBP": 30,
    "JPY": 50,
    "AED": 200,
    "BGN": 100,
    "BRL": 50,
    "CZK": 1500,
    "DKK": 250,
    "HKD": 400,
    "INR": 50,
    "MXN": 1000,
    "MYR": 200,
    "NOK": 300,
    "NZD": 50,
    "PLN": 200,
    "RON": 200,
    "SEK": 300,
    "SGD": 50,
}


def stripe_units(currency: str) -> ProviderUnits:
    """How Stripe counts `currency` (JPY: whole yen); others of the catalogue: cents."""
    return units_for("Stripe", currency, zero_decimal=STRIPE_ZERO_DECIMAL, refused=STRIPE_REFUSED)


def stripe_amount(amount_minor: int, currency: str) -> tuple[ProviderUnits, int]:
    """(units, Stripe's `unit_amount`) for `amount_minor` hundredths, rounded up to a whole
    Stripe unit (`ProviderUnits`). Below Stripe's minimum charge for the currency it raises
    `FiatBelowMinimum` before any call. Stripe judges the minimum in the account's
    settlement currency: a charge above this table that converts below it there is still
    refused by Stripe, as a `FiatRefused`."""
    units = stripe_units(currency)
    unit_amount = units.to_provider(amount_minor)
    minimum = STRIPE_MINIMUM.get(units.currency)
    if minimum is not None and unit_amount < minimum:
        smallest = units.to_hundredths(minimum)
        raise FiatBelowMinimum(
            f"Stripe cannot charge less than {Money(Currency(units.currency), smallest)}",
            amount_minor=units.to_hundredths(unit_amount),
            minimum_minor=smallest,
        )
    return units, unit_amount
