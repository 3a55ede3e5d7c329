"""Where the refreshed rate snapshot is kept: in process memory, or in Redis with a TTL (R1.16)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from domain.errors import DomainError
from domain.exchange import DEFAULT_MAX_RATE_AGE, ExchangeRate, RateTable
from domain.money import Currency

log = logging.getLogger(__name__)

#: the reference's key prefix: `exchange_rate:BTC/EUR` and so on.
REDIS_KEY_PREFIX = "exchange_rate:"
DEFAULT_TTL_S = 300.0
FIAT = tuple(c for c in Currency if c.is_fiat)


class MemoryRateStore:
    """Latest rate per currency in a dict; a rate not refreshed goes stale (`RateTable`)."""

    def __init__(self, *, max_age: timedelta = DEFAULT_MAX_RATE_AGE) -> None:
        self._rates: dict[Currency, ExchangeRate] = {}
        self._max_age = max_age

    async def save(self, rates: Sequence[ExchangeRate]) -> None:
        self._rates.update({r.quote: r for r in rates})

    async def table(self) -> RateTable:
        return RateTable(dict(self._rates), self._max_age)


class RedisRateStore:
    """One key per ticker, `{"rate": "<decimal>", "as_of": "<iso>", "fetched": "<iso>"}`
    (`fetched` when known), expiring after `ttl` s.

    An expired, missing or unreadable key is simply absent from the table, so a lookup
    answers `NoExchangeRate`, never a zero (R1.17).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        ttl: float = DEFAULT_TTL_S,
        *,
        key_prefix: str = REDIS_KEY_PREFIX,
        max_age: timedelta = DEFAULT_MAX_RATE_AGE,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, got {ttl}")
        self._redis = redis
        self._ttl_ms = max(1, round(ttl * 1000))
        self._prefix = key_prefix
        self._max_age = max_age

    def key(self, currency: Currency) -> str:
        return f"{self._prefix}BTC/{currency.value}"

    async def save(self, rates: Sequence[ExchangeRate]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for rate in rates:
                pipe.set(self.key(rate.quote), encode_rate(rate), px=self._ttl_ms)
            await pipe.execute()

    async def table(self) -> RateTable:
        """The stored rates; with Redis down the table is empty (lookups: 503, never a 0)."""
        try:
            values = await self._redis.mget([self.key(c) for c in FIAT])
        except RedisError as error:
            log.warning("cannot read exchange rates from Redis: %s", error)
            return RateTable({}, self._max_age)
        found = []
        for currency, raw in zip(FIAT, values, strict=True):
            if raw is None:
                continue
            rate = decode_rate(currency, raw)
            if rate is None:
                log.warning("ignoring unreadable rate under %s: %r", self.key(currency), raw)
                continue
            found.append(rate)
        return RateTable.of(found, self._max_age)


def encode_rate(rate: ExchangeRate) -> str:
    value = {"rate": str(rate.rate), "as_of": rate.as_of.isoformat()}
    if rate.fetched is not None:
        value["fetched"] = rate.fetched.isoformat()
    return json.dumps(value)


def decode_rate(currency: Currency, raw: str | bytes) -> ExchangeRate | None:
    """The stored rate, or None for anything this adapter did not write (e.g. a bare float).
    A value written before rates carried `fetched` is read without it (judged by `as_of`)."""
    try:
        value = json.loads(raw)
        if not isinstance(value, dict):
            return None
        text, as_of, fetched = value.get("rate"), value.get("as_of"), value.get("fetched")
        if not isinstance(text, str) or not isinstance(as_of, str):
            return None
        if fetched is not None and not isinstance(fetched, str):
            return None
        return ExchangeRate(
            currency,
            Decimal(text),
            datetime.fromisoformat(as_of),
            None if fetched is None else datetime.fromisoformat(fetched),
        )
    except (ValueError, InvalidOperation, DomainError, TypeError):
        return None
