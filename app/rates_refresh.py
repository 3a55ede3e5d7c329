"""Refreshing the exchange-rate snapshot every 120 s (R1.16); a failed refresh keeps the old one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from ports.clock import Clock
from ports.rates import RateSource, RateSourceUnavailable, RateStore

log = logging.getLogger(__name__)

REFRESH_INTERVAL_S = 120.0
#: rates dated further ahead than this are refused: they would never go stale.
MAX_CLOCK_SKEW = timedelta(minutes=5)


async def refresh_rates(source: RateSource, store: RateStore, *, clock: Clock | None = None) -> int:
    """Fetch and save the current rates; returns how many were saved.

    `RateSourceUnavailable` propagates and the store is left untouched. With a clock, rates
    dated more than `MAX_CLOCK_SKEW` in the future are dropped.
    """
    rates = list(await source.fetch())
    if clock is not None:
        limit = clock.now() + MAX_CLOCK_SKEW
        future = [r for r in rates if r.as_of > limit]
        if future:
            log.warning("dropping %d rates dated in the future: %s", len(future), future)
            rates = [r for r in rates if r.as_of <= limit]
    if rates:
        await store.save(rates)
    return len(rates)


async def run_rate_refresher(
    source: RateSource,
    store: RateStore,
    *,
    stop_event: asyncio.Event,
    interval_s: float = REFRESH_INTERVAL_S,
    clock: Clock | None = None,
) -> None:
    """Refresh now and then every `interval_s` until `stop_event` is set.

    Failures are logged and the loop goes on; the last good snapshot stays in the store and
    goes stale on its own (lookups then answer `NoExchangeRate`, never a zero).
    """
    while not stop_event.is_set():
        try:
            count = await refresh_rates(source, store, clock=clock)
            log.debug("refreshed %d exchange rates", count)
        except RateSourceUnavailable as error:
            log.warning("exchange-rate refresh failed, keeping the previous rates: %s", error)
        except Exception:
            log.exception("exchange-rate refresh failed unexpectedly, keeping the previous rates")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), timeout=interval_s)
