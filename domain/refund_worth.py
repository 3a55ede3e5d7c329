"""What a refund of unused paid time pays: today's price, never more than was paid for it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from fractions import Fraction

import attrs

from domain.credit_conversion import Converted, convert_down
from domain.exchange import RateTable
from domain.money import Currency, Money
from domain.paid_periods import PaymentShare, UnusedTime
from domain.price_basis import Parts


def _times(recurring: Parts, count: Fraction) -> tuple[Money, ...]:
    """`count` intervals of each part of the price, floored in its own unit."""
    return tuple(Money(c, a * count.numerator // count.denominator) for c, a in recurring)


@attrs.frozen(kw_only=True)
class RefundWorth:
    """The unused time at the price in force (`priced`, one part per currency the price is
    in) and what limits it: the same for the time whose payments are not known
    (`unknown`) plus what the known payments carried for the rest (`paid`, exact, in
    `target`); `unknown` None when nothing limits it. Valued in `target`, the
    subscription's currency. Time no payment bought (days an admin added free) is in none
    of them (`unused_time`): it is worth nothing."""

    target: Currency
    priced: tuple[Money, ...]
    unknown: tuple[Money, ...] | None
    paid: Fraction
    #: each payment's part of the time (`UnusedTime.shares`), newest first, and the
    #: intervals of the time whose payments are not known
    shares: tuple[PaymentShare, ...] = ()
    unknown_intervals: Fraction = Fraction(0)

    @classmethod
    def of(cls, recurring: Parts, target: Currency, time: UnusedTime) -> RefundWorth:
        """The worth of `time` at the price per interval `recurring`."""
        limited = time.known > 0
        return cls(
            target=target,
            priced=_times(recurring, time.intervals),
            unknown=_times(recurring, time.intervals - time.known) if limited else None,
            paid=time.paid,
            shares=time.shares,
            unknown_intervals=time.intervals - time.known,
        )

    @property
    def needs_rates(self) -> bool:
        """A part priced in another currency than `target`: valuing it reads today's rates."""
        return any(m.currency is not self.target and m.amount for m in self.priced)

    def valued(self, table: RateTable | None, now: datetime) -> Converted:
        """The refund in `target`: the lesser of the time at today's price (the foreign parts
        converted exactly at today's BTC rates of `table`, the sum floored once:
        `convert_down`, `NoExchangeRate` without a fresh rate) and what was paid for it (the
        known payments' share, floored, plus the time of periods whose payment is not known
        at today's price).
        `table` may be None when nothing `needs_rates`."""
        worth = convert_down(self.priced, self.target, table, now)
        if self.unknown is None:
            return worth
        rest = convert_down(self.unknown, self.target, table, now).money.amount
        limit = rest + self.paid.numerator // self.paid.denominator
        if limit >= worth.money.amount:
            return worth
        return attrs.evolve(worth, money=Money(self.target, limit), uncapped=worth.money)

    def split(self, value: int, table: RateTable | None, now: datetime) -> dict[str, int]:
        """`value` (what `valued` gave, smallest units of `target`) shared out among the
        payments that bought the time (`shares`, by payment id in hex), so each invoice
        gives back its own payment's part and no other's: in proportion to what each
        carried for the unused time (`valued`'s limit, so each gets exactly that when the
        price in force is not lower), a payment not known weighing its intervals at the
        price in force; with nothing limiting the value, in proportion to the intervals.
        Whole units, adding up to `value` (`split_by_weight`: the units rounding left go
        to the newest payments first); empty when no payment bought any of it (time added
        free: `value` is 0)."""
        return split_by_weight(value, self._weights(table, now))

    def exact_split(
        self, value: int, table: RateTable | None, now: datetime
    ) -> dict[str, Fraction]:
        """`split`'s shares exact, before rounding (adding up to `value`): what a refund
        compares with what each invoice has left, so a small note is not lost in a share's
        rounding (r24 F2)."""
        return exact_by_weight(value, self._weights(table, now))

    def _weights(self, table: RateTable | None, now: datetime) -> list[tuple[str, Fraction]]:
        if self.unknown is None:
            return [(share.key, Fraction(share.intervals)) for share in self.shares]
        rest = convert_down(self.unknown, self.target, table, now).money.amount
        return [(share.key, self._weight(share, rest)) for share in self.shares]

    def _weight(self, share: PaymentShare, rest: int) -> Fraction:
        """What `share`'s payment carried for its unused time, or for one not known its
        intervals' part of `rest`, the price in force of all such time."""
        if share.paid is not None:
            return share.paid
        if self.unknown_intervals <= 0:
            return Fraction(0)
        return rest * share.intervals / self.unknown_intervals


def exact_by_weight(total: int, weights: Sequence[tuple[str, Fraction]]) -> dict[str, Fraction]:
    """`total` shared out by `weights` exactly (the positive ones; empty when none is, or
    `total` is not positive)."""
    positive = [(key, weight) for key, weight in weights if weight > 0]
    whole = sum(weight for _, weight in positive)
    if not positive or total <= 0:
        return {}
    return {key: Fraction(total) * weight / whole for key, weight in positive}


def split_by_weight(total: int, weights: Sequence[tuple[str, Fraction]]) -> dict[str, int]:
    """`total` shared out by `weights` in whole units, adding up to `total`: each its exact
    share floored, then the units the floors left a unit each to the first keys (a
    refund's newest payment first, as its notes are issued). Empty when no weight is
    positive."""
    positive = [(key, weight) for key, weight in weights if weight > 0]
    whole = sum(weight for _, weight in positive)
    if not positive or total <= 0:
        return {}
    out = {key: math.floor(total * weight / whole) for key, weight in positive}
    left = total - sum(out.values())
    for key, _ in positive[:left]:
        out[key] += 1
    return out
