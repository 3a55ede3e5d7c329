"""Credit valued in another currency than its price: through BTC rates, exact, floored once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

import attrs

from domain.account_credit import MAX_NOTE
from domain.errors import NoExchangeRate
from domain.exchange import RateTable
from domain.money import Currency, Money
from domain.price_basis import Parts, exact_value, normal_parts


def exact_text(money: Money) -> str:
    """`EUR 0.88`, or `1650000 msat` for bitcoin: the figure exactly, to recompute from."""
    if money.currency is Currency.BTC:
        return f"{money.amount} msat"
    return str(money)


@attrs.frozen(kw_only=True)
class Converted:
    """`parts` (amounts in their own currencies) valued as one `money` in the target currency,
    at `rates` (fiat units per BTC of each fiat currency involved; empty: nothing converted)."""

    money: Money
    parts: Parts
    rates: tuple[tuple[Currency, Decimal], ...] = ()
    #: what `parts` were worth before a limit brought `money` down (None: no limit did)
    uncapped: Money | None = None

    @property
    def note(self) -> str | None:
        """What was converted, into what, at which rates (None: nothing was, nor limited), for
        the ledger: `GBP 0.88 as EUR 1.10 at BTC/GBP 80000, BTC/EUR 100000 (exact, rounded
        down)`; a limited value says so: `…; limited to EUR 1.05, what was paid for it`."""
        said = []
        if self.rates:
            was = " + ".join(exact_text(Money(c, a)) for c, a in self.parts)
            at = ", ".join(f"BTC/{c.value} {rate}" for c, rate in self.rates)
            worth = exact_text(self.uncapped or self.money)
            said.append(f"{was} as {worth} at {at} (exact, rounded down)")
        if self.uncapped is not None:
            if not self.rates:
                said.append(f"worth {exact_text(self.uncapped)} at the price in force")
            said.append(f"limited to {exact_text(self.money)}, what was paid for it")
        return "; ".join(said) or None


def noted(said: str, converted: Converted) -> str:
    """A ledger note: `said` (cut to fit), then what was converted at which rates, if any."""
    conversion = converted.note
    if conversion is None:
        return said[:MAX_NOTE]
    room = max(0, MAX_NOTE - len(conversion) - 2)
    return f"{said[:room]}; {conversion}"[:MAX_NOTE]


def _needs_rates(parts: Parts, target: Currency) -> tuple[Currency, ...]:
    """The fiat currencies whose BTC rate the conversion needs (none when all is in target)."""
    if all(currency is target for currency, _ in parts):
        return ()
    involved = {currency for currency, _ in parts} | {target}
    return tuple(sorted((c for c in involved if c.is_fiat), key=lambda c: c.value))


def convert_at(
    amounts: Iterable[Money], target: Currency, rates: Mapping[Currency, Decimal]
) -> Converted | None:
    """The sum of `amounts` in smallest units of `target`: each part in another currency is
    converted exactly through the BTC `rates` (fiat units per BTC; fiat to fiat through
    both), and the sum is rounded down once, in the operator's favour. None when a rate the
    conversion needs is missing: the value cannot be known."""
    parts = normal_parts(amounts)
    needed = _needs_rates(parts, target)
    if any(c not in rates or not rates[c] > 0 for c in needed):
        return None
    used = tuple((c, rates[c]) for c in needed)
    exact = exact_value(parts, target, dict(used))
    if exact is None:  # impossible: every rate it reads is in `used`
        return None
    amount = exact.numerator // exact.denominator
    return Converted(money=Money(target, amount), parts=parts, rates=used)


def convert_down(
    amounts: Iterable[Money], target: Currency, table: RateTable | None, now: datetime
) -> Converted:
    """`convert_at` today's rates of `table`: a rate that is missing or stale is
    `NoExchangeRate` (503). `table` may be None when every amount is in `target` already
    (nothing to convert, no rate read)."""
    parts = normal_parts(amounts)
    needed = _needs_rates(parts, target)
    if needed and table is None:
        raise NoExchangeRate(f"No exchange rate to value {parts[0][0].value} in {target.value}")
    rates = {c: table.btc_rate(c, now).rate for c in needed} if table is not None else {}
    converted = convert_at([Money(c, a) for c, a in parts], target, rates)
    if converted is None:  # impossible: every rate it needs was looked up above
        raise NoExchangeRate(f"No exchange rate to value the amount in {target.value}")
    return converted
