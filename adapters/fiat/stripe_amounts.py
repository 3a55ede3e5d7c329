"""Stripe's unit and smallest charge for each currency, and a stored amount in that unit."""

from __future__ import annotations

from typing import Final

from adapters.fiat.units import ProviderUnits, units_for
from domain.money import Currency, Money
from ports.fiat import FiatBelowMinimum

#: Stripe's smallest charge in each catalogue currency, in Stripe's units (its "Minimum and
#: maximum charge amounts"); it refuses a smaller one with `amount_too_small` on every attempt.
STRIPE_MINIMUM: Final = {
    "USD": 50,
    "AUD": 50,
    "CAD": 50,
    "CHF": 50,
    "EUR": 50,
    "GBP": 30,
    "JPY": 50,
}


def stripe_units(currency: str) -> ProviderUnits:
    """How Stripe counts `currency` (JPY: whole yen); others of the catalogue: cents."""
    return units_for("Stripe", currency)


def stripe_amount(amount_minor: int, currency: str) -> tuple[ProviderUnits, int]:
    """(units, Stripe's `unit_amount`) for `amount_minor` hundredths, rounded up to a whole
    Stripe unit (`ProviderUnits`). Below Stripe's minimum charge for the currency it raises
    `FiatBelowMinimum` before any call. Stripe judges the minimum in the account's
    settlement currency: a charge above this table that converts below it there is still
    refused by Stripe, as a `FiatRefused`."""
    units = stripe_units(currency)
    unit_amount = units.to_provider(amount_minor)
    minimum = STRIPE_MINIMUM[units.currency]
    if unit_amount < minimum:
        smallest = units.to_hundredths(minimum)
        raise FiatBelowMinimum(
            f"Stripe cannot charge less than {Money(Currency(units.currency), smallest)}",
            amount_minor=units.to_hundredths(unit_amount),
            minimum_minor=smallest,
        )
    return units, unit_amount
