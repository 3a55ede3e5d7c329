"""Where BTC exchange rates come from and where the refreshed snapshot is kept."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from domain.exchange import ExchangeRate, RateTable


class RateSourceUnavailable(Exception):
    """The rate source could not be read; the previous snapshot stays until it goes stale."""


class RateSource(Protocol):
    async def fetch(self) -> Sequence[ExchangeRate]:
        """Current BTC/fiat rates with the time they were observed."""
        ...


class RateStore(Protocol):
    async def save(self, rates: Sequence[ExchangeRate]) -> None: ...

    async def table(self) -> RateTable:
        """The latest snapshot; freshness is checked when a rate is looked up."""
        ...
