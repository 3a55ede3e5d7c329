"""BTC/fiat rates from mempool.space `/api/v1/prices` (R1.16), parsed exactly as Decimal (D1)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NoReturn

import aiohttp

from domain.exchange import ExchangeRate
from domain.money import Currency
from ports.rates import RateSourceUnavailable

MEMPOOL_PRICES_URL = "https://mempool.space/api/v1/prices"
DEFAULT_TIMEOUT_S = 10.0
#: a prices document is a few hundred bytes; anything far larger is not one.
MAX_BODY_BYTES = 64 * 1024


class MempoolRateSource:
    """Reads the prices document over HTTP; any failure is `RateSourceUnavailable`."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._url = url
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def fetch(self) -> Sequence[ExchangeRate]:
        try:
            async with self._session.get(self._url, timeout=self._timeout) as response:
                if response.status != 200:
                    raise RateSourceUnavailable(f"{self._url} answered HTTP {response.status}")
                body = bytearray()
                async for chunk in response.content.iter_chunked(16 * 1024):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise RateSourceUnavailable(
                            f"{self._url} sent more than {MAX_BODY_BYTES} bytes"
                        )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise RateSourceUnavailable(f"{self._url} unreachable: {error!r}") from error
        return parse_prices(bytes(body))


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a rate")


def parse_prices(body: str | bytes) -> list[ExchangeRate]:
    """The positive fiat tickers of a prices document; numbers never pass through float."""
    try:
        document: Any = json.loads(
            body, parse_float=Decimal, parse_int=Decimal, parse_constant=_no_constants
        )
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity
        raise RateSourceUnavailable(f"prices document is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise RateSourceUnavailable("prices document is not a JSON object")
    as_of = _as_of(document.get("time"))
    rates = [
        ExchangeRate(currency, value, as_of)
        for currency in Currency
        if currency.is_fiat
        and isinstance(value := document.get(currency.value), Decimal)
        and value.is_finite()
        and value > 0
    ]
    if not rates:
        raise RateSourceUnavailable("prices document holds no usable BTC/fiat rate")
    return rates


def _as_of(value: object) -> datetime:
    """`time` (unix seconds) as an aware UTC datetime; without it no rate can be dated."""
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise RateSourceUnavailable(f"prices document has no usable time: {value!r}")
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise RateSourceUnavailable(f"prices document time out of range: {value}") from error
