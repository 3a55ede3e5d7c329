"""Exchange rates: mempool parsing, fixed source, memory/Redis stores and the refresher."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.memory.clock import FakeClock
from adapters.rates.fixed import FixedRateSource
from adapters.rates.mempool import MempoolRateSource, parse_prices
from adapters.rates.store import MemoryRateStore, RedisRateStore
from app.rates_refresh import refresh_rates, run_rate_refresher
from domain.errors import InvalidInput, NoExchangeRate
from domain.exchange import DEFAULT_MAX_RATE_AGE, ExchangeRate
from domain.money import Currency
from ports.rates import RateSource, RateSourceUnavailable, RateStore
from tests.fakes.fake_mempool import FakeMempool
from tests.redistest import connect_redis

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EUR, USD, GBP = Currency.EUR, Currency.USD, Currency.GBP


async def drop_keys(client: aioredis.Redis, prefix: str) -> None:
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = await connect_redis()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def key_prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    """A unique key prefix; every key under it is deleted afterwards."""
    prefix = f"lnvps_t_{secrets.token_hex(6)}:exchange_rate:"
    yield prefix
    await drop_keys(redis_client, prefix)


StoreFactory = Callable[..., RateStore]


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """Builds fresh stores of each kind (keyword argument: `max_age`)."""
    if request.param == "memory":
        yield MemoryRateStore
        return
    client = await connect_redis()
    prefix = f"lnvps_t_{secrets.token_hex(6)}:exchange_rate:"

    def redis_store(max_age: timedelta = DEFAULT_MAX_RATE_AGE) -> RateStore:
        return RedisRateStore(client, key_prefix=prefix, max_age=max_age)

    try:
        yield redis_store
    finally:
        await drop_keys(client, prefix)
        await client.aclose()


def rate(currency: Currency, text: str, as_of: datetime = NOW) -> ExchangeRate:
    return ExchangeRate(currency, Decimal(text), as_of)


# --- stores (one contract, every adapter) -------------------------------------------------


async def test_save_then_lookup_exact(make_store: StoreFactory) -> None:
    store = make_store()
    await store.save([rate(EUR, "34123.45"), rate(USD, "37000"), rate(GBP, "29000.10")])
    table = await store.table()
    found = table.btc_rate(EUR, NOW)
    assert found == rate(EUR, "34123.45")
    assert str(table.btc_rate(GBP, NOW).rate) == "29000.10"
    assert table.btc_rate(USD, NOW).rate == Decimal(37000)
    with pytest.raises(NoExchangeRate, match="No exchange rate found for BTC/JPY"):
        table.btc_rate(Currency.JPY, NOW)


async def test_empty_store_has_no_rate(make_store: StoreFactory) -> None:
    table = await make_store().table()
    for currency in Currency:
        if currency.is_fiat:
            with pytest.raises(NoExchangeRate):
                table.btc_rate(currency, NOW)


async def test_later_save_replaces_per_ticker(make_store: StoreFactory) -> None:
    store = make_store()
    await store.save([rate(EUR, "100"), rate(USD, "200")])
    later = NOW + timedelta(seconds=120)
    await store.save([rate(EUR, "101", later)])
    table = await store.table()
    assert table.btc_rate(EUR, later) == rate(EUR, "101", later)
    assert table.btc_rate(USD, later) == rate(USD, "200")


async def test_stale_rate_is_no_rate(make_store: StoreFactory) -> None:
    store = make_store()
    await store.save([rate(EUR, "100")])
    table = await store.table()
    assert table.btc_rate(EUR, NOW + timedelta(seconds=300)).rate == Decimal(100)
    with pytest.raises(NoExchangeRate, match="stale"):
        table.btc_rate(EUR, NOW + timedelta(seconds=301))


async def test_store_max_age_is_used(make_store: StoreFactory) -> None:
    store = make_store(max_age=timedelta(seconds=30))
    await store.save([rate(EUR, "100")])
    with pytest.raises(NoExchangeRate):
        (await store.table()).btc_rate(EUR, NOW + timedelta(seconds=31))


# --- Redis specifics ----------------------------------------------------------------------


def test_redis_key_is_the_reference_key() -> None:
    store = RedisRateStore(aioredis.Redis())  # never connects
    assert store.key(EUR) == "exchange_rate:BTC/EUR"


async def test_redis_value_and_ttl(redis_client: aioredis.Redis, key_prefix: str) -> None:
    store = RedisRateStore(redis_client, ttl=300, key_prefix=key_prefix)
    await store.save([rate(EUR, "34123.45")])
    key = key_prefix + "BTC/EUR"
    raw = await redis_client.get(key)
    assert raw is not None
    stored = json.loads(raw)
    assert stored["rate"] == "34123.45"
    assert datetime.fromisoformat(stored["as_of"]) == NOW
    assert 290_000 < await redis_client.pttl(key) <= 300_000


async def test_redis_expired_key_is_no_rate(redis_client: aioredis.Redis, key_prefix: str) -> None:
    store = RedisRateStore(redis_client, ttl=0.05, key_prefix=key_prefix)
    await store.save([rate(EUR, "100")])
    assert (await store.table()).btc_rate(EUR, NOW).rate == Decimal(100)
    await asyncio.sleep(0.12)
    with pytest.raises(NoExchangeRate, match="No exchange rate found for BTC/EUR"):
        (await store.table()).btc_rate(EUR, NOW)


async def test_redis_down_is_no_rate() -> None:
    client = aioredis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    try:
        table = await RedisRateStore(client).table()
    finally:
        await client.aclose()
    with pytest.raises(NoExchangeRate):
        table.btc_rate(EUR, NOW)


@pytest.mark.parametrize(
    "raw",
    [
        "37000.5",
        "0",
        '{"rate": "0", "as_of": "2026-11-25T12:00:00+00:00"}',
        '{"rate": "abc", "as_of": "x"}',
        '{"rate": "1"}',
    ],
)
async def test_redis_unreadable_value_is_no_rate(
    redis_client: aioredis.Redis, key_prefix: str, raw: str
) -> None:
    await redis_client.set(key_prefix + "BTC/EUR", raw, ex=60)
    table = await RedisRateStore(redis_client, key_prefix=key_prefix).table()
    with pytest.raises(NoExchangeRate):
        table.btc_rate(EUR, NOW)


# --- mempool source -----------------------------------------------------------------------

PRICES = (
    '{"time": 1700000000, "USD": 37000, "EUR": 34123.45, "GBP": 29000.10, "CAD": -1,'
    ' "CHF": 0, "AUD": null, "JPY": 5549999.123456789012345678901, "XYZ": 5}'
)


async def fetch_from(fake: FakeMempool, timeout_s: float = 2.0) -> Sequence[ExchangeRate]:
    async with fake.running() as url, aiohttp.ClientSession() as session:
        return await MempoolRateSource(url, session, timeout_s=timeout_s).fetch()


async def test_mempool_parses_exact_decimals() -> None:
    rates = {r.quote: r for r in await fetch_from(FakeMempool(PRICES))}
    as_of = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert set(rates) == {USD, EUR, GBP, Currency.JPY}  # CAD -1, CHF 0, AUD null skipped
    assert rates[EUR] == ExchangeRate(EUR, Decimal("34123.45"), as_of)
    assert str(rates[GBP].rate) == "29000.10"
    assert rates[USD].rate == Decimal(37000)
    assert rates[Currency.JPY].rate == Decimal("5549999.123456789012345678901")


async def test_mempool_reads_a_body_sent_in_pieces() -> None:
    rates = await fetch_from(FakeMempool(PRICES, pieces=5))
    assert {r.quote: r.rate for r in rates}[EUR] == Decimal("34123.45")


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        '{"USD": 37000}',  # no time
        '{"time": "1700000000", "USD": 37000}',
        '{"time": 1e300, "USD": 37000}',
        '{"time": 1700000000}',  # no rates
        '{"time": 1700000000, "USD": -1, "EUR": "34000"}',  # none usable
        '{"time": 1700000000, "USD": NaN}',
        '{"time": 1700000000, "USD": Infinity}',
    ],
)
async def test_mempool_bad_payload_is_unavailable(body: str) -> None:
    with pytest.raises(RateSourceUnavailable):
        await fetch_from(FakeMempool(body))


async def test_mempool_http_error_is_unavailable() -> None:
    with pytest.raises(RateSourceUnavailable, match="HTTP 502"):
        await fetch_from(FakeMempool(PRICES, status=502))


async def test_mempool_timeout_is_unavailable() -> None:
    with pytest.raises(RateSourceUnavailable):
        await fetch_from(FakeMempool(PRICES, delay_s=1.0), timeout_s=0.05)


async def test_mempool_oversized_body_is_unavailable() -> None:
    with pytest.raises(RateSourceUnavailable, match="more than"):
        await fetch_from(FakeMempool(PRICES + " " * 70_000, pieces=10))


async def test_mempool_unreachable_is_unavailable() -> None:
    fake = FakeMempool(PRICES)
    async with fake.running() as url:
        pass  # the server is closed again: nothing listens at url
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RateSourceUnavailable, match="unreachable"):
            await MempoolRateSource(url, session, timeout_s=1).fetch()


def test_parse_prices_never_goes_through_float() -> None:
    [only] = parse_prices(b'{"time": 1700000000, "EUR": 0.1}')
    assert only.rate == Decimal("0.1")  # float 0.1 would be 0.1000000000000000055…


# --- fixed source -------------------------------------------------------------------------


async def test_fixed_source_dates_rates_now() -> None:
    clock = FakeClock(NOW)
    source = FixedRateSource({EUR: Decimal("95000.5"), USD: Decimal(100000)}, clock)
    assert set(await source.fetch()) == {rate(EUR, "95000.5"), rate(USD, "100000")}
    later = clock.advance(timedelta(hours=1))
    assert {r.as_of for r in await source.fetch()} == {later}


@pytest.mark.parametrize(
    "rates", [{Currency.BTC: Decimal(1)}, {EUR: Decimal(0)}, {EUR: Decimal(-5)}, {EUR: 1.5}]
)
def test_fixed_source_refuses_bad_rates(rates: dict[Currency, Decimal]) -> None:
    with pytest.raises((InvalidInput, TypeError)):
        FixedRateSource(rates, FakeClock(NOW))


# --- refresher ----------------------------------------------------------------------------


class FlakySource:
    """Serves `good` until told to fail; counts fetches."""

    def __init__(self, good: RateSource, error: Exception | None = None) -> None:
        self.good = good
        self.error = error
        self.fetches = 0
        self._fetched = asyncio.Condition()

    async def until(self, fetches: int) -> None:
        async with self._fetched:
            await self._fetched.wait_for(lambda: self.fetches >= fetches)

    async def fetch(self) -> Sequence[ExchangeRate]:
        async with self._fetched:
            self.fetches += 1
            self._fetched.notify_all()
        if self.error is not None:
            raise self.error
        return await self.good.fetch()


async def test_refresh_saves_and_counts(make_store: StoreFactory) -> None:
    clock = FakeClock(NOW)
    store = make_store()
    source = FixedRateSource({EUR: Decimal(90000), USD: Decimal(100000)}, clock)
    assert await refresh_rates(source, store) == 2
    assert (await store.table()).btc_rate(USD, NOW).rate == Decimal(100000)


async def test_failed_refresh_keeps_previous_snapshot(make_store: StoreFactory) -> None:
    clock = FakeClock(NOW)
    store = make_store()
    source = FlakySource(FixedRateSource({EUR: Decimal(90000)}, clock))
    await refresh_rates(source, store)
    clock.advance(timedelta(seconds=120))
    source.error = RateSourceUnavailable("mempool down")
    with pytest.raises(RateSourceUnavailable):
        await refresh_rates(source, store)
    table = await store.table()
    assert table.btc_rate(EUR, clock.now()) == rate(EUR, "90000")  # the old one, still fresh
    with pytest.raises(NoExchangeRate, match="stale"):
        table.btc_rate(EUR, clock.advance(timedelta(seconds=181)))  # 301 s old: gone stale


async def test_refresh_drops_rates_dated_in_the_future() -> None:
    store = MemoryRateStore()
    far = FakeClock(NOW + timedelta(days=1))
    source = FixedRateSource({EUR: Decimal(90000)}, far)
    assert await refresh_rates(source, store, clock=FakeClock(NOW)) == 0
    with pytest.raises(NoExchangeRate):
        (await store.table()).btc_rate(EUR, far.now())


async def test_refresher_loop_survives_failures_and_stops() -> None:
    clock = FakeClock(NOW)
    store = MemoryRateStore()
    source = FlakySource(FixedRateSource({EUR: Decimal(90000)}, clock))
    stop = asyncio.Event()
    task = asyncio.create_task(run_rate_refresher(source, store, interval_s=0.005, stop_event=stop))
    await asyncio.wait_for(source.until(1), timeout=10)
    source.error = RuntimeError("unexpected")  # a bug in a source must not kill the loop
    await asyncio.wait_for(source.until(4), timeout=10)
    source.error = RateSourceUnavailable("down")
    await asyncio.wait_for(source.until(6), timeout=10)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert (await store.table()).btc_rate(EUR, NOW) == rate(EUR, "90000")


async def test_refresher_stops_promptly_while_waiting() -> None:
    stop = asyncio.Event()
    source = FlakySource(FixedRateSource({EUR: Decimal(1)}, FakeClock(NOW)))
    task = asyncio.create_task(
        run_rate_refresher(source, MemoryRateStore(), interval_s=3600, stop_event=stop)
    )
    await asyncio.wait_for(source.until(1), timeout=10)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert source.fetches == 1
