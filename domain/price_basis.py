"""The price a renewal is quoted against, and what a payment buys at the price in force (D23)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import attrs

from domain.errors import DomainError
from domain.intervals import Interval
from domain.money import FIAT_MINOR_PER_MAJOR, MSAT_PER_BTC, Currency, Money

#: keys of a Purchase/Renewal payment's `metadata`: the price quoted against, the BTC rates
#: of the quote, and (once completed) how the payment was credited.
PRICE_KEY = "price"
RATES_KEY = "rates"
CREDIT_KEY = "credit"

Parts = tuple[tuple[Currency, int], ...]


def _key(part: tuple[Currency, int]) -> str:
    return part[0].value


def normal_parts(amounts: Iterable[Money]) -> Parts:
    """Amounts summed per currency, zero sums dropped, in currency order."""
    sums: dict[Currency, int] = {}
    for money in amounts:
        sums[money.currency] = sums.get(money.currency, 0) + money.amount
    return tuple(sorted(((c, a) for c, a in sums.items() if a), key=_key))


def describe(parts: Parts) -> str:
    """`EUR 2.50 + BTC 0.00001000`, or `nothing` for a free price."""
    return " + ".join(str(Money(c, a)) for c, a in parts) or "nothing"


@attrs.frozen(kw_only=True)
class PriceBasis:
    """What one interval of a subscription costs, in list currencies, for one buyer.

    `recurring` is every line item's list price per `interval`; `setup` the setup fees a
    Purchase adds; `country` the buyer's tax country (tax does not change what time is
    worth, but an invoice taxed for another country is worth telling the operator about).
    """

    interval: Interval
    recurring: Parts
    setup: Parts = ()
    country: str | None = None

    @classmethod
    def of(
        cls,
        interval: Interval,
        recurring: Iterable[Money],
        setup: Iterable[Money] = (),
        country: str | None = None,
    ) -> PriceBasis:
        return cls(
            interval=interval,
            recurring=normal_parts(recurring),
            setup=normal_parts(setup),
            country=country,
        )

    def same_price(self, other: PriceBasis) -> bool:
        """Same interval, same recurring price and same setup fees (the tax country aside)."""
        return (self.interval, self.recurring, self.setup) == (
            other.interval,
            other.recurring,
            other.setup,
        )

    def changes_since(self, quoted: PriceBasis) -> tuple[str, ...]:
        """What changed from the `quoted` basis to this one, in words for the operator."""
        out: list[str] = []
        if quoted.interval != self.interval:
            out.append(f"interval {quoted.interval.text} → {self.interval.text}")
        if quoted.recurring != self.recurring:
            out.append(
                f"price per interval {describe(quoted.recurring)} → {describe(self.recurring)}"
            )
        if quoted.setup != self.setup:
            out.append(f"setup fees {describe(quoted.setup)} → {describe(self.setup)}")
        if quoted.country != self.country:
            out.append(f"tax country {quoted.country or 'none'} → {self.country or 'none'}")
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "interval": [int(self.interval.unit), self.interval.amount],
            "recurring": {c.value: a for c, a in self.recurring},
            "setup": {c.value: a for c, a in self.setup},
            "country": self.country,
        }

    @classmethod
    def from_json(cls, value: Any) -> PriceBasis | None:
        """The basis stored by `to_json`; anything else (absent, malformed) is None: unknown."""
        try:
            unit, amount = value["interval"]
            country = value.get("country")
            if country is not None and not isinstance(country, str):
                return None
            return cls(
                interval=Interval(unit, amount),
                recurring=normal_parts(_money_map(value["recurring"])),
                setup=normal_parts(_money_map(value.get("setup") or {})),
                country=country,
            )
        except (DomainError, KeyError, TypeError, ValueError, AttributeError):
            return None


def _money_map(value: Any) -> list[Money]:
    if not isinstance(value, Mapping):
        raise TypeError("not a mapping")
    out = []
    for code, amount in value.items():
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError("amount is not an int")
        out.append(Money(Currency.parse(code), amount))
    return out


def rates_json(rates: Mapping[Currency, Decimal]) -> dict[str, str]:
    return {c.value: str(r) for c, r in sorted(rates.items(), key=lambda kv: kv[0].value)}


def rates_from_json(value: Any) -> dict[Currency, Decimal]:
    """BTC rates (fiat units per BTC) stored with a quote; unusable entries are left out."""
    out: dict[Currency, Decimal] = {}
    if not isinstance(value, Mapping):
        return out
    for code, text in value.items():
        try:
            currency, rate = Currency.parse(code), Decimal(str(text))
        except (DomainError, InvalidOperation, ValueError):
            continue
        if currency.is_fiat and rate.is_finite() and rate > 0:
            out[currency] = rate
    return out


def quote_btc_rate(meta: Mapping[str, Any], currency: Currency) -> Decimal | None:
    """The BTC rate of `currency` a payment was quoted at, from the rates its quote stored;
    None when they lack it (or it stored none: a row from before rates were stored).

    Never its `rate` column: that is the BTC rate of the one list currency it was priced in
    (1 for BTC passing through, 0 for none), which the row does not name, so read as the
    rate of another currency it converts at a wrong rate (a EUR payment's excess credited
    into a USD balance at the EUR rate; a quote that saw no fresh rate, `rates: {}`, priced
    in BTC, valued its EUR credit at 1 EUR per BTC). Without the quote's rate of
    `currency` its callers value nothing and say so (credit is then not applied, or not
    booked and the admins told), never at another currency's rate."""
    return rates_from_json(meta.get(RATES_KEY)).get(currency)


def exact_value(
    parts: Parts, target: Currency, rates: Mapping[Currency, Decimal]
) -> Fraction | None:
    """`parts` in smallest units of `target`, exactly (no rounding), through BTC rates.

    None when a rate that is needed is missing: the value cannot be known.
    """
    total = Fraction(0)
    for currency, amount in parts:
        if currency is target:
            total += amount
            continue
        source_rate = None if currency is Currency.BTC else rates.get(currency)
        target_rate = None if target is Currency.BTC else rates.get(target)
        if target is Currency.BTC:
            if source_rate is None:
                return None
            total += Fraction(amount * MSAT_PER_BTC, FIAT_MINOR_PER_MAJOR) / Fraction(source_rate)
        elif currency is Currency.BTC:
            if target_rate is None:
                return None
            total += Fraction(amount * FIAT_MINOR_PER_MAJOR) * Fraction(target_rate) / MSAT_PER_BTC
        else:  # fiat to fiat through BTC; both count hundredths, so the ×100s cancel
            if source_rate is None or target_rate is None:
                return None
            total += Fraction(amount) * Fraction(target_rate) / Fraction(source_rate)
    return total


def intervals_bought(
    net: int, currency: Currency, basis: PriceBasis, rates: Mapping[Currency, Decimal]
) -> Fraction | None:
    """How many intervals `net` (tax and fee excluded) buys at `basis`, exactly.

    Setup fees in the basis are paid first. None when the price cannot be valued in the
    payment's currency (a rate is missing) or is free (nothing to scale time by).
    """
    price = exact_value(basis.recurring, currency, rates)
    setup = exact_value(basis.setup, currency, rates)
    if price is None or setup is None or price <= 0:
        return None
    return max(Fraction(0), (net - setup) / price)
