"""What a refund of unused paid time pays: today's price, never more than was paid for it."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction

import attrs

from domain.credit_conversion import Converted, convert_down
from domain.exchange import RateTable
from domain.money import Currency, Money
from domain.paid_periods import UnusedTime
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

    @classmethod
    def of(cls, recurring: Parts, target: Currency, time: UnusedTime) -> RefundWorth:
        """The worth of `time` at the price per interval `recurring`."""
        limited = time.known > 0
        return cls(
            target=target,
            priced=_times(recurring, time.intervals),
            unknown=_times(recurring, time.intervals - time.known) if limited else None,
            paid=time.paid,
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
