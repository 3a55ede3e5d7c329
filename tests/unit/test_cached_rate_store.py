"""The in-process copy of the shared rate snapshot: served for its TTL, dropped by a save."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from adapters.cache.rates import CachedRateStore
from adapters.rates.store import MemoryRateStore
from domain.exchange import ExchangeRate, RateTable
from domain.money import Currency

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


class CountingStore(MemoryRateStore):
    reads = 0

    async def table(self) -> RateTable:
        self.reads += 1
        return await super().table()


def eur(rate: int) -> list[ExchangeRate]:
    return [ExchangeRate(Currency.EUR, Decimal(rate), NOW)]


async def test_the_snapshot_is_read_once_per_ttl_and_a_save_is_seen_at_once() -> None:
    clock = [0.0]
    inner = CountingStore()
    store = CachedRateStore(inner, ttl=2.0, monotonic=lambda: clock[0])
    await store.save(eur(100_000))
    first = await store.table()
    assert first.btc_rate(Currency.EUR, NOW).rate == 100_000
    clock[0] = 1.9
    assert await store.table() is first
    assert inner.reads == 1
    clock[0] = 2.0
    await store.table()
    assert inner.reads == 2
    await store.save(eur(90_000))  # this node's refresher: no stale copy afterwards
    assert (await store.table()).btc_rate(Currency.EUR, NOW).rate == 90_000
    assert inner.reads == 3
