"""A fixed-rate source for development and demos: the same rates, dated now, on every fetch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from domain.errors import InvalidInput
from domain.exchange import ExchangeRate
from domain.money import Currency
from ports.clock import Clock


class FixedRateSource:
    """Serves the configured BTC/fiat rates with `as_of` = the clock's now at each fetch."""

    def __init__(self, rates: Mapping[Currency, Decimal], clock: Clock) -> None:
        for currency, rate in rates.items():
            if not currency.is_fiat:
                raise InvalidInput(f"fixed rates are BTC/fiat; BTC/{currency.value} is not one")
            # validates the rate (a positive Decimal) now rather than at the first fetch
            ExchangeRate(currency, rate, clock.now())
        self._rates = dict(rates)
        self._clock = clock

    async def fetch(self) -> Sequence[ExchangeRate]:
        now = self._clock.now()
        return [ExchangeRate(currency, rate, now) for currency, rate in self._rates.items()]
