"""Fiat amounts between this project's hundredths and a card provider's own unit for a currency."""

from __future__ import annotations

from typing import Final

import attrs

from domain.money import Currency, currency_code
from ports.fiat import FiatCurrencyNotChargeable

#: every fiat amount here is kept in hundredths of its major unit, JPY too (D-Units)
STORED_DECIMALS: Final = 2


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


def units_for(
    provider: str,
    currency: str,
    *,
    zero_decimal: frozenset[str],
    refused: frozenset[str] = frozenset(),
) -> ProviderUnits:
    """`provider`'s unit for `currency`: whole units for its `zero_decimal` currencies,
    hundredths for the catalogue's others (the providers' documented default).

    A code outside the catalogue (or BTC), or one the provider treats specially (`refused`:
    Stripe's ISK, HUF, TWD, UGX and its three-decimal currencies), raises
    `FiatCurrencyNotChargeable`: no catalogue price can be in it, and its unit is not guessed.
    """
    code = currency_code(currency)
    if code is None or code == Currency.BTC.value or code in refused:
        raise FiatCurrencyNotChargeable(f"{provider} cannot charge {currency.upper()}")
    return ProviderUnits(provider, code, 0 if code in zero_decimal else STORED_DECIMALS)
