"""Refreshing the exchange-rate snapshot every 120 s (R1.16); a failed refresh keeps the old one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from domain.exchange import ExchangeRate, implausible_change
from domain.money import Currency
from ports.clock import Clock
from ports.rates import RateSource, RateSourceUnavailable, RateStore

log = logging.getLogger(__name__)

REFRESH_INTERVAL_S = 120.0
#: rates the feed dates further ahead than this are refused (a feed whose clock is off).
MAX_CLOCK_SKEW = timedelta(seconds=60)
#: a rate whose feed time is older than this when fetched is refused: the feed is frozen,
#: and the last accepted rate goes stale on its own (`rates.max-feed-age`). mempool.space
#: moves its time every 5 minutes; a self-hosted instance may move it only once an hour.
DEFAULT_MAX_FEED_AGE = timedelta(minutes=15)
#: a new rate further than this fraction from the last one accepted is refused as a glitch
#: (`rates.max-change`, in percent there).
DEFAULT_MAX_CHANGE = Decimal("0.2")

#: a refused rate whose level holds (each fetch within `max-change` of the first refused one)
#: for this long is a real move, not a glitch, and is accepted: a market that moved further
#: than the bound, or a rate after a long outage, then stops answering 503 by itself
CONFIRM_MOVE_AFTER = timedelta(minutes=15)

#: tells the admins (title, message); best effort.
Alert = Callable[[str, str], Awaitable[None]]


@attrs.define
class RateGuard:
    """What a fetched rate must meet to be stored, and the last rate accepted per currency.

    Kept by one process across its refreshes: its first rates are compared with the shared
    store's (`seed`), and accepted as they are only when it holds none; each later one
    must lie within `max_change` (a fraction; None: no bound) of the last accepted, else
    it is refused, logged at ERROR and told to the admins once per run of refusals, and the
    previous rate stays until it goes stale.
    A refused level that holds for `confirm_after` (every fetch meanwhile within
    `max_change` of the first refused) is accepted as a real move, and the admins told: a
    glitch rarely lasts that long, and a real move must not stop Lightning sales for good.
    """

    max_feed_age: timedelta = DEFAULT_MAX_FEED_AGE
    max_change: Decimal | None = DEFAULT_MAX_CHANGE
    alert: Alert | None = None
    confirm_after: timedelta = CONFIRM_MOVE_AFTER
    _accepted: dict[Currency, Decimal] = attrs.field(factory=dict, init=False)
    _refusing: set[Currency] = attrs.field(factory=set, init=False)
    #: per currency, the level refused first in the current run of refusals and since when
    _held: dict[Currency, tuple[Decimal, datetime]] = attrs.field(factory=dict, init=False)

    async def admit(self, rates: Sequence[ExchangeRate], now: datetime) -> list[ExchangeRate]:
        """The rates that may be stored, stamped `fetched=now` (their age counts from it)."""
        kept = []
        for rate in rates:
            if rate.as_of > now + MAX_CLOCK_SKEW:
                log.warning(
                    "dropping %s %s dated in the future (%s)", rate.ticker, rate.rate, rate.as_of
                )
                continue
            if now - rate.as_of > self.max_feed_age:
                log.warning(
                    "dropping %s %s: the feed's price is from %s, older than %s (frozen feed?)",
                    rate.ticker,
                    rate.rate,
                    rate.as_of.isoformat(),
                    self.max_feed_age,
                )
                continue
            if await self._implausible(rate, now):
                continue
            kept.append(attrs.evolve(rate, fetched=now))
        return kept

    async def _implausible(self, rate: ExchangeRate, now: datetime) -> bool:
        previous = self._accepted.get(rate.quote)
        if (
            previous is None
            or self.max_change is None
            or not implausible_change(previous, rate.rate, self.max_change)
        ):
            self._refusing.discard(rate.quote)
            self._held.pop(rate.quote, None)
            return False
        if self._move_confirmed(rate, now, self.max_change):
            self._refusing.discard(rate.quote)
            text = (
                f"The exchange-rate feed has sent {rate.ticker} near {rate.rate}, more than"
                f" {self.max_change * 100:f} % away from the last accepted {previous}, for"
                f" {self.confirm_after} without a break: accepted as a real move."
            )
            log.warning("OPERATOR: %s", text)
            await self._tell(f"Exchange rate {rate.ticker} moved", text)
            return False
        text = (
            f"The exchange-rate feed sent {rate.ticker} {rate.rate}, more than"
            f" {self.max_change * 100:f} % away from the last accepted {previous}: refused as"
            " a glitch. The last accepted rate stays until it goes stale (Lightning prices"
            " then answer 503). If the market really moved that far, the new level is accepted"
            " once every fetch has confirmed it for 15 minutes; to accept it sooner, raise"
            " rates.max-change."
        )
        log.error("OPERATOR: %s", text)
        if rate.quote not in self._refusing:
            self._refusing.add(rate.quote)
            await self._tell(f"Exchange rate {rate.ticker} refused", text)
        return True

    def _move_confirmed(self, rate: ExchangeRate, now: datetime, bound: Decimal) -> bool:
        """Whether the refused `rate` continues a level held for `confirm_after`; starts a
        new held level when it does not continue one."""
        held = self._held.get(rate.quote)
        if held is None or implausible_change(held[0], rate.rate, bound):
            self._held[rate.quote] = (rate.rate, now)
            return False
        if now - held[1] < self.confirm_after:
            return False
        del self._held[rate.quote]
        return True

    async def _tell(self, title: str, text: str) -> None:
        if self.alert is None:
            return
        try:
            await self.alert(title, text)
        except Exception:
            log.exception("could not tell the admins of a refused exchange rate")

    def knows(self, quotes: Iterable[Currency]) -> bool:
        """Whether every one of `quotes` has a rate accepted to compare with."""
        return all(q in self._accepted for q in quotes)

    def seed(self, stored: Iterable[ExchangeRate]) -> None:
        """Compare with the rates already in the shared store, whatever their age, where this
        process has accepted none yet: a process started during a feed's glitch (several
        processes share one store) would otherwise accept the glitch as its first rate and
        write it over the others' (review r13a). With nothing stored, the first rate is
        accepted as it is."""
        for rate in stored:
            self._accepted.setdefault(rate.quote, rate.rate)

    def accepted(self, rates: Sequence[ExchangeRate]) -> None:
        """Remember the rates stored: the next ones are compared with them."""
        self._accepted.update({r.quote: r.rate for r in rates})


async def refresh_rates(
    source: RateSource,
    store: RateStore,
    *,
    clock: Clock | None = None,
    guard: RateGuard | None = None,
) -> int:
    """Fetch and save the current rates; returns how many were saved.

    `RateSourceUnavailable` propagates and the store is left untouched. With a clock, each
    rate is judged by `guard` (a fresh `RateGuard` when None: no earlier rate to compare
    with) and stamped with the clock's now as its fetch time, from which its age counts.
    """
    rates = list(await source.fetch())
    if clock is not None:
        guard = RateGuard() if guard is None else guard
        if not guard.knows(r.quote for r in rates):
            guard.seed((await store.table()).rates.values())
        rates = await guard.admit(rates, clock.now())
    if rates:
        await store.save(rates)
        if guard is not None:
            guard.accepted(rates)
    return len(rates)


async def run_rate_refresher(
    source: RateSource,
    store: RateStore,
    *,
    stop_event: asyncio.Event,
    interval_s: float = REFRESH_INTERVAL_S,
    clock: Clock | None = None,
    guard: RateGuard | None = None,
) -> None:
    """Refresh now and then every `interval_s` until `stop_event` is set.

    Failures are logged and the loop goes on; the last good snapshot stays in the store and
    goes stale on its own (lookups then answer `NoExchangeRate`, never a zero). One `guard`
    judges every refresh of the loop (a new one when None).
    """
    guard = RateGuard() if guard is None else guard
    while not stop_event.is_set():
        try:
            count = await refresh_rates(source, store, clock=clock, guard=guard)
            log.debug("refreshed %d exchange rates", count)
        except RateSourceUnavailable as error:
            log.warning("exchange-rate refresh failed, keeping the previous rates: %s", error)
        except Exception:
            log.exception("exchange-rate refresh failed unexpectedly, keeping the previous rates")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), timeout=interval_s)
