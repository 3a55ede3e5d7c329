"""Exchange rates judged by when we fetched them, a frozen or far-ahead feed refused, and a
rate far from the last accepted one refused as a glitch (r6 F1, F3)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from adapters.memory.clock import FakeClock
from adapters.rates.mempool import parse_prices
from adapters.rates.store import MemoryRateStore, RedisRateStore, decode_rate, encode_rate
from app.rates_refresh import Alert, RateGuard, refresh_rates
from domain.errors import NoExchangeRate
from domain.exchange import ExchangeRate, RateTable
from domain.money import Currency
from ports.rates import RateStore
from tests.redistest import connect_redis

T0 = datetime(2026, 12, 7, tzinfo=UTC)
EUR, USD = Currency.EUR, Currency.USD


class Feed:
    """mempool.space as it behaves: the document's `time` moves only every `every` seconds."""

    def __init__(self, clock: FakeClock, every: int = 300, eur: str = "90000") -> None:
        self.clock, self.every, self.eur = clock, every, eur
        self.frozen_at: datetime | None = None
        self.ahead = timedelta(0)

    async def fetch(self) -> Sequence[ExchangeRate]:
        now = self.clock.now()
        updated = now - timedelta(seconds=int((now - T0).total_seconds()) % self.every)
        stamp = (self.frozen_at or updated) + self.ahead
        return parse_prices(f'{{"time": {int(stamp.timestamp())}, "EUR": {self.eur}}}')


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RateStore]:
    if request.param == "memory":
        yield MemoryRateStore()
        return
    client = await connect_redis()
    prefix = f"lnvps_t_guard_{id(request)}:exchange_rate:"
    try:
        # a TTL far beyond the test's fake time: freshness is the table's own judgement
        yield RedisRateStore(client, ttl=3600, key_prefix=prefix)
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def quotable(store: RateStore, now: datetime) -> bool:
    try:
        (await store.table()).btc_rate(EUR, now)
    except NoExchangeRate:
        return False
    return True


@pytest.mark.parametrize("phase", [0, 30, 119])
async def test_fresh_fetches_of_a_slow_feed_are_never_stale(store: RateStore, phase: int) -> None:
    """r6 stale_window: the feed's time moves every 300 s, we fetch every 120 s; the rate is
    quotable at every second (it was refused 10-29 % of the time when aged by feed time)."""
    clock = FakeClock(T0)
    feed, guard = Feed(clock), RateGuard()
    refused = 0
    for t in range(0, 3600, 5):
        clock.set(T0 + timedelta(seconds=t))
        if t % 120 == phase - phase % 5:
            assert await refresh_rates(feed, store, clock=clock, guard=guard) == 1
        if t >= 120 and not await quotable(store, clock.now()):
            refused += 1
    assert refused == 0


async def test_rate_ages_from_its_fetch(store: RateStore) -> None:
    clock = FakeClock(T0 + timedelta(seconds=290))  # the feed's time is 290 s old
    await refresh_rates(Feed(clock), store, clock=clock)
    stored = (await store.table()).btc_rate(EUR, clock.now())
    assert stored.as_of == T0 and stored.fetched == clock.now()
    assert await quotable(store, clock.advance(timedelta(seconds=300)))
    assert not await quotable(store, clock.advance(timedelta(seconds=1)))


async def test_frozen_feed_is_refused_and_the_last_rate_goes_stale(store: RateStore) -> None:
    clock = FakeClock(T0)
    feed, guard = Feed(clock), RateGuard(max_feed_age=timedelta(minutes=15))
    feed.frozen_at = T0
    assert await refresh_rates(feed, store, clock=clock, guard=guard) == 1
    clock.set(T0 + timedelta(minutes=15))  # exactly the bound: still accepted
    assert await refresh_rates(feed, store, clock=clock, guard=guard) == 1
    last = clock.now()
    clock.set(T0 + timedelta(minutes=15, seconds=1))
    assert await refresh_rates(feed, store, clock=clock, guard=guard) == 0
    assert await quotable(store, last + timedelta(seconds=300))
    assert not await quotable(store, last + timedelta(seconds=301))


async def test_feed_time_ahead_is_fresh_no_longer_than_its_fetch(store: RateStore) -> None:
    clock = FakeClock(T0)
    feed = Feed(clock)
    feed.ahead = timedelta(minutes=10)  # beyond the skew: dropped
    assert await refresh_rates(feed, store, clock=clock) == 0
    feed.ahead = timedelta(seconds=59)  # within it: kept, aged from the fetch
    assert await refresh_rates(feed, store, clock=clock) == 1
    assert await quotable(store, T0 + timedelta(seconds=300))
    assert not await quotable(store, T0 + timedelta(seconds=301))


def test_a_rate_dated_ahead_of_the_reader_is_fresh_only_within_the_age() -> None:
    """r6: a negative age counted as fresh however large. A rate fetched just after the
    reader read its `now` is fresh; one dated further ahead than `max_age` is stale."""
    rate = ExchangeRate(EUR, Decimal(90000), T0, T0 + timedelta(seconds=300))
    assert RateTable.of([rate]).btc_rate(EUR, T0) is rate
    with pytest.raises(NoExchangeRate, match="stale"):
        RateTable.of([rate]).btc_rate(EUR, T0 - timedelta(seconds=1))
    ahead = ExchangeRate(EUR, Decimal(90000), T0 + timedelta(hours=1))  # no fetch time
    with pytest.raises(NoExchangeRate, match="stale"):
        RateTable.of([ahead]).btc_rate(EUR, T0)


def test_stored_value_keeps_the_fetch_time() -> None:
    rate = ExchangeRate(EUR, Decimal("90000.5"), T0, T0 + timedelta(seconds=7))
    assert decode_rate(EUR, encode_rate(rate)) == rate
    old = '{"rate": "90000", "as_of": "2026-12-07T00:00:00+00:00"}'  # written before
    assert decode_rate(EUR, old) == ExchangeRate(EUR, Decimal(90000), T0)
    assert (
        decode_rate(EUR, '{"rate": "1", "as_of": "2026-12-07T00:00:00+00:00", "fetched": 5}')
        is None
    )


# --- plausibility (F3) ----------------------------------------------------------------------


def alerts() -> tuple[list[tuple[str, str]], Alert]:
    told: list[tuple[str, str]] = []

    async def alert(title: str, text: str) -> None:
        told.append((title, text))

    return told, alert


async def test_a_glitched_rate_is_refused_and_the_old_one_stays(
    store: RateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """r6 absurd_rate: EUR 9e9 after 9e4 is not stored; the old rate prices until stale."""
    clock = FakeClock(T0)
    feed = Feed(clock)
    told, alert = alerts()
    guard = RateGuard(max_change=Decimal("0.2"), alert=alert)
    assert await refresh_rates(feed, store, clock=clock, guard=guard) == 1  # first: accepted
    feed.eur = "9000000000"
    with caplog.at_level(logging.ERROR, logger="app.rates_refresh"):
        clock.advance(timedelta(seconds=120))
        assert await refresh_rates(feed, store, clock=clock, guard=guard) == 0
        clock.advance(timedelta(seconds=120))
        assert await refresh_rates(feed, store, clock=clock, guard=guard) == 0
    assert (await store.table()).btc_rate(EUR, clock.now()).rate == Decimal(90000)
    assert not await quotable(store, T0 + timedelta(seconds=301))  # then stale, never 9e9
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2
    assert len(told) == 1 and "BTC/EUR" in told[0][0] and "9000000000" in told[0][1]
    feed.eur = "91000"  # plausible again: accepted, and a later glitch told again
    assert await refresh_rates(feed, store, clock=clock, guard=guard) == 1
    feed.eur = "1"
    assert await refresh_rates(feed, store, clock=clock, guard=guard) == 0
    assert len(told) == 2


async def test_a_level_that_holds_is_accepted_as_a_real_move() -> None:
    """A move past the bound that every fetch confirms for 15 minutes is accepted (the
    admins told), so a real move does not stop Lightning sales until a restart; a level
    that keeps jumping is never confirmed, and a glitch of a few fetches stays refused."""
    clock, store = FakeClock(T0), MemoryRateStore()
    told, alert = alerts()
    feed, guard = Feed(clock), RateGuard(max_change=Decimal("0.2"), alert=alert)
    await refresh_rates(feed, store, clock=clock, guard=guard)
    stored = []
    for eur in ("60000", "61000", "59500", "60500", "60200", "60100", "60300", "60000", "60400"):
        clock.advance(timedelta(seconds=120))
        feed.eur = eur
        stored.append(await refresh_rates(feed, store, clock=clock, guard=guard))
    # refused from 0 to 14 min after the first 60000, accepted at 16 min (the 9th fetch)
    assert stored == [0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert (await store.table()).btc_rate(EUR, clock.now()).rate == Decimal(60400)
    titles = [title for title, _ in told]
    assert titles == ["Exchange rate BTC/EUR refused", "Exchange rate BTC/EUR moved"]

    jumpy = RateGuard(max_change=Decimal("0.2"))
    await refresh_rates(Feed(clock, eur="90000"), store, clock=clock, guard=jumpy)
    for n in range(20):
        clock.advance(timedelta(seconds=120))
        level = "9000000000" if n % 2 else "1000"
        assert await refresh_rates(Feed(clock, eur=level), store, clock=clock, guard=jumpy) == 0


async def test_a_process_started_during_a_glitch_judges_it_by_the_shared_store(
    store: RateStore,
) -> None:
    """Review r13a: several processes (API, worker) refresh one store. One that starts while
    the feed glitches compares with the store's rate instead of accepting the glitch as its
    first; with nothing stored the first rate is accepted as it is."""
    clock = FakeClock(T0)
    await refresh_rates(Feed(clock), store, clock=clock, guard=RateGuard())  # 90000 stored
    clock.advance(timedelta(seconds=120))
    restarted = RateGuard(max_change=Decimal("0.2"))
    glitch = Feed(clock, eur="9000000000")
    assert await refresh_rates(glitch, store, clock=clock, guard=restarted) == 0
    assert (await store.table()).btc_rate(EUR, clock.now()).rate == Decimal(90000)
    assert await refresh_rates(Feed(clock, eur="91000"), store, clock=clock, guard=restarted) == 1

    empty = MemoryRateStore()
    assert await refresh_rates(glitch, empty, clock=clock, guard=RateGuard()) == 1


@pytest.mark.parametrize(
    ("new", "accepted"),
    [("108000", True), ("72000", True), ("108001", False), ("71999", False)],
)
async def test_the_bound_is_a_fraction_of_the_last_accepted(new: str, accepted: bool) -> None:
    clock, store = FakeClock(T0), MemoryRateStore()
    feed, guard = Feed(clock), RateGuard(max_change=Decimal("0.2"))
    await refresh_rates(feed, store, clock=clock, guard=guard)
    feed.eur = new
    assert await refresh_rates(feed, store, clock=clock, guard=guard) == int(accepted)


async def test_no_bound_when_turned_off() -> None:
    clock, store = FakeClock(T0), MemoryRateStore()
    feed, guard = Feed(clock), RateGuard(max_change=None)
    await refresh_rates(feed, store, clock=clock, guard=guard)
    feed.eur = "9000000000"
    assert await refresh_rates(feed, store, clock=clock, guard=guard) == 1


async def test_an_alert_that_fails_does_not_stop_the_refresh() -> None:
    async def broken(title: str, text: str) -> None:
        raise RuntimeError("queue down")

    clock, store = FakeClock(T0), MemoryRateStore()
    feed, guard = Feed(clock), RateGuard(alert=broken)
    await refresh_rates(feed, store, clock=clock, guard=guard)
    feed.eur = "9000000000"
    assert await refresh_rates(feed, store, clock=clock, guard=guard) == 0
