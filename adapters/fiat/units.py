"""Fiat amounts between this project's hundredths and a card provider's own unit for a currency."""

from __future__ import annotations

from typing import Final

import attrs

from domain.money import Currency, currency_code
from ports.fiat import FiatCurrencyNotChargeable

#: every fiat amount here is kept in hundredths of its major unit, JPY too (D-Units)
STORED_DECIMALS: Final = 2
#: the catalogue's currencies the card providers count in whole units (¥500 is 500, where
#: ours count hundredths): Stripe's "zero-decimal currencies" (docs.stripe.com/currencies)
#: and Revolut's "minor currency units", ISO 4217's (minor unit 0), agree on JPY, and both
#: count every other catalogue currency in cents. Outside the catalogue they differ (ISK,
#: UGX; Stripe's special cases HUF and TWD, its three-decimal currencies): a currency
#: added to `Currency` has its unit decided here for both, not guessed.
ZERO_DECIMAL: Final = frozenset({Currency.JPY.value})


@attrs.frozen
class ProviderUnits:
    """How one provider counts one currency: `decimals` digits after the major unit (2: the
    provider counts cents, as we do; 0: it counts whole units, as Stripe does yen).

    A stored amount goes to the provider rounded UP to a whole provider unit, because a
    quote's tax and fee can leave hundredths a whole-unit currency cannot charge
    (JPY 1 683.33), and rounding down would charge less than the quote. So the provider asks
    at most one of its units less one hundredth more than the quote (JPY 1 683.33 → ¥1 684,
    0.67 more), never less. `to_hundredths` of what was sent is exact: that is what the
    payment records as its total (the rest as processing fee), so completion and invoices
    count what the payer was really asked.
    """

    provider: str
    currency: str
    decimals: int = attrs.field(validator=attrs.validators.in_(range(STORED_DECIMALS + 1)))

    @property
    def step(self) -> int:
        """Hundredths in one provider unit (1 for cents, 100 for whole yen)."""
        return int(10 ** (STORED_DECIMALS - self.decimals))

    def to_provider(self, hundredths: int) -> int:
        """The provider's amount for `hundredths`, rounded up to a whole provider unit."""
        return -(-hundredths // self.step)

    def to_hundredths(self, provider_amount: int) -> int:
        """A provider's amount (sent to it or read back from it) in our hundredths, exactly."""
        return provider_amount * self.step


def units_for(provider: str, currency: str) -> ProviderUnits:
    """`provider`'s unit for `currency`: whole units for the `ZERO_DECIMAL` currencies,
    hundredths for the catalogue's others (the providers' documented default).

    A code outside the catalogue (or BTC) raises `FiatCurrencyNotChargeable`: no catalogue
    price can be in it, and its unit is not guessed.
    """
    code = currency_code(currency)
    if code is None or code == Currency.BTC.value:
        raise FiatCurrencyNotChargeable(f"{provider} cannot charge {currency.upper()}")
    return ProviderUnits(provider, code, 0 if code in ZERO_DECIMAL else STORED_DECIMALS)
