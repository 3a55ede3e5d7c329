"""Exchange rates and conversion into the currency a payment method charges (§1.6–1.7, D2)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs

from domain.enums import PaymentMethod
from domain.errors import InvalidInput, NoExchangeRate, PaymentMethodUnsupported
from domain.intervals import require_utc
from domain.money import (
    FIAT_MINOR_PER_MAJOR,
    MSAT_PER_BTC,
    Currency,
    Money,
    round_msat_up_to_sat,
)

#: rates older than this are unusable; the reference refreshes every 120 s with a 300 s TTL.
#: A rate's age counts from when this service fetched it (`ExchangeRate.fetched`), not from
#: the feed's own time: mempool.space moves its `time` only every 5 minutes (a self-hosted
#: instance once an hour), so a rate fetched a moment ago would often look older than this.
DEFAULT_MAX_RATE_AGE = timedelta(seconds=300)


def _positive_decimal(_: object, __: object, value: Any) -> None:
    if not isinstance(value, Decimal):
        raise TypeError("exchange rates are Decimal")
    if not value.is_finite() or value <= 0:
        raise InvalidInput(f"exchange rate must be a positive number, got {value}")


@attrs.frozen
class ExchangeRate:
    """Units of `quote` per one BTC (e.g. BTC/EUR 100000), observed at `as_of` (the feed's own
    time) and fetched by this service at `fetched` (its clock; None: not known, `as_of` is
    taken instead). Freshness is judged by `seen`."""

    quote: Currency
    rate: Decimal = attrs.field(validator=_positive_decimal)
    as_of: datetime = attrs.field(converter=require_utc)
    fetched: datetime | None = attrs.field(
        default=None, converter=attrs.converters.optional(require_utc)
    )

    @property
    def seen(self) -> datetime:
        """When the rate was last known current: its fetch, else the feed's time."""
        return self.as_of if self.fetched is None else self.fetched

    @property
    def ticker(self) -> str:
        return f"BTC/{self.quote.value}"


#: the rate stored on a payment that needed no conversion.
PASSTHROUGH_RATE = Decimal(1)


@attrs.frozen
class RateTable:
    """A snapshot of BTC/fiat rates; looking one up checks it is present and fresh."""

    rates: Mapping[Currency, ExchangeRate] = attrs.field(factory=dict)
    max_age: timedelta = DEFAULT_MAX_RATE_AGE

    @classmethod
    def of(
        cls, rates: Iterable[ExchangeRate], max_age: timedelta = DEFAULT_MAX_RATE_AGE
    ) -> RateTable:
        return cls({r.quote: r for r in rates}, max_age)

    def btc_rate(self, fiat: Currency, now: datetime) -> ExchangeRate:
        """The BTC/fiat rate; a missing or stale one is an error, never a zero (R1.17).

        Stale: fetched (`ExchangeRate.seen`) more than `max_age` before `now`, or more than
        `max_age` after it. A rate fetched a little after `now` was read (a worker run's
        `now`, two processes' clocks a little apart) is fresh, but a negative age never
        makes a rate fresh for longer than `max_age` after it was seen."""
        require_utc(now)
        found = self.rates.get(fiat)
        if found is None:
            raise NoExchangeRate(f"No exchange rate found for BTC/{fiat.value}")
        if abs(now - found.seen) > self.max_age:
            raise NoExchangeRate(f"Exchange rate for BTC/{fiat.value} is stale")
        return found


def implausible_change(previous: Decimal, new: Decimal, max_change: Decimal) -> bool:
    """Whether `new` differs from `previous` by more than the fraction `max_change` of
    `previous` (0.2: more than 20 % up or down): a feed's glitch (EUR 9e9 for 9e4), not a
    market move between two refreshes."""
    return abs(new - previous) > previous * max_change


def _half_up(value: Fraction) -> int:
    """Nearest integer of a non-negative exact fraction, halves up."""
    return (2 * value.numerator + value.denominator) // (2 * value.denominator)


def fiat_to_msat(amount_minor: int, rate: Decimal) -> int:
    """Fiat minor units → msat, exactly, rounded half-up (D2).

    Computed on exact fractions, not in the decimal context: a Decimal division keeps only
    28 significant digits, which can round a value just below a half up to the half.
    """
    exact = Fraction(amount_minor * MSAT_PER_BTC) / (FIAT_MINOR_PER_MAJOR * Fraction(rate))
    return _half_up(exact)


def msat_to_fiat(msat: int, rate: Decimal) -> int:
    """msat → fiat minor units, exactly, rounded half-up (D2)."""
    exact = Fraction(msat * FIAT_MINOR_PER_MAJOR) * Fraction(rate) / MSAT_PER_BTC
    return _half_up(exact)


def convert(amount: Money, target: Currency, rates: RateTable, now: datetime) -> Money:
    """Convert between any two supported currencies through BTC, rounding half-up."""
    if amount.currency is target:
        return amount
    if target is Currency.BTC:
        rate = rates.btc_rate(amount.currency, now).rate
        return Money(Currency.BTC, fiat_to_msat(amount.amount, rate))
    if amount.currency is Currency.BTC:
        rate = rates.btc_rate(target, now).rate
        return Money(target, msat_to_fiat(amount.amount, rate))
    via_btc = convert(amount, Currency.BTC, rates, now)
    return convert(via_btc, target, rates, now)


@attrs.frozen
class ChargedAmount:
    """An amount in the currency the payment method charges, with the rate used to get it."""

    money: Money
    rate: Decimal


def charged_currency(list_currency: Currency, method: PaymentMethod) -> Currency:
    """Which currency a method charges for a price listed in `list_currency` (R1.19)."""
    if method is PaymentMethod.LIGHTNING:
        return Currency.BTC
    if method is not PaymentMethod.PAYPAL:  # PayPal was never priced (no PayPal rail)
        # every other rail (cards, bank transfer) charges the list currency as is; none of
        # them can charge bitcoin
        if list_currency is Currency.BTC:
            raise PaymentMethodUnsupported(f"Cant get price from BTC to {method.display_name}")
        return list_currency
    raise PaymentMethodUnsupported(
        f"Cant get price from {list_currency.value} to {method.display_name}"
    )


def charge_amount(
    list_price: Money, method: PaymentMethod, rates: RateTable, now: datetime
) -> ChargedAmount:
    """Price in the charged currency: Lightning in msat rounded up to a whole sat (D2, R1.19)."""
    target = charged_currency(list_price.currency, method)
    if target is Currency.BTC:
        if list_price.currency is Currency.BTC:
            msat, rate = list_price.amount, PASSTHROUGH_RATE
        else:
            ticker = rates.btc_rate(list_price.currency, now)
            msat, rate = fiat_to_msat(list_price.amount, ticker.rate), ticker.rate
        return ChargedAmount(Money(Currency.BTC, round_msat_up_to_sat(msat)), rate)
    return ChargedAmount(list_price, PASSTHROUGH_RATE)


def exact_charge_value(
    value: Fraction,
    source: Currency,
    method: PaymentMethod,
    target: Currency,
    rates: RateTable,
    now: datetime,
) -> tuple[Fraction, Decimal]:
    """`value` smallest units of `source` (an exact fraction: a pro-rated price) in `target`
    (a currency `method` charges), exactly, and the rate used (`ChargedAmount.rate`: BTC per
    `source` for Lightning, the cross rate for a card charged in another fiat than the
    price's, else 1). Nothing is rounded: the caller rounds the charge once
    (`round_charge`). A price `method` cannot charge is refused as `charged_currency`
    refuses it."""
    own = charged_currency(source, method)
    if source is target:
        return value, PASSTHROUGH_RATE
    if own is target:  # Lightning of a fiat price: D2's formula, unrounded
        rate = rates.btc_rate(source, now).rate
        return value * MSAT_PER_BTC / (FIAT_MINOR_PER_MAJOR * Fraction(rate)), rate
    # a card charged in another fiat than the price's: through BTC, both rates exact
    to_rate, from_rate = rates.btc_rate(target, now).rate, rates.btc_rate(source, now).rate
    return value * Fraction(to_rate) / Fraction(from_rate), to_rate / from_rate


def round_charge(value: Fraction, target: Currency) -> Money:
    """An exact charge in `target` rounded once as D2 rounds one: msat half up, then up to
    a whole sat; a fiat amount up to its minor unit. Either way the operator is never
    underpaid (D2), and an upgrade bought in two steps never costs less than at once: half
    up, 3.37 cents were charged 3, and 0.4 + 0.4 cents nothing (review r18). D2's half-up
    to the minor unit is for converting BTC into fiat, not for a charge. Never negative."""
    if value <= 0:
        return Money(target, 0)
    if target is Currency.BTC:
        return Money(target, round_msat_up_to_sat(_half_up(value)))
    return Money(target, -(-value.numerator // value.denominator))
