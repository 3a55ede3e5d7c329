"""Currencies and amounts in smallest units (pricing.md §1, DECISIONS D1)."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from enum import Enum
from typing import Any

import attrs

from domain.errors import CurrencyMismatch, NegativeAmount, UnknownCurrency

MSAT_PER_SAT = 1000
MSAT_PER_BTC = 100_000_000_000
FIAT_MINOR_PER_MAJOR = 100


class Currency(Enum):
    """The supported currencies, in the reference's declaration order."""

    EUR = "EUR"
    BTC = "BTC"
    USD = "USD"
    GBP = "GBP"
    CAD = "CAD"
    CHF = "CHF"
    AUD = "AUD"
    JPY = "JPY"

    @classmethod
    def parse(cls, text: str) -> Currency:
        """Parse a code case-insensitively ("eur" → EUR)."""
        try:
            return cls(text.strip().upper())
        except (ValueError, AttributeError):
            raise UnknownCurrency(f"unknown currency: {text}") from None

    @property
    def is_fiat(self) -> bool:
        return self is not Currency.BTC

    @property
    def minor_per_major(self) -> int:
        """Smallest units per major unit: msat for BTC, ×100 for every fiat (JPY too, D-Units)."""
        return MSAT_PER_BTC if self is Currency.BTC else FIAT_MINOR_PER_MAJOR


def currency_code(text: str) -> str | None:
    """The code of the currency `text` names, read as `Currency.parse` reads it (None: none)."""
    try:
        return Currency.parse(text).value
    except UnknownCurrency:
        return None


def _check_amount(_: object, __: object, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"money amounts are int smallest units, got {type(value).__name__}")
    if value < 0:
        raise NegativeAmount(f"amount must not be negative, got {value}")


@attrs.frozen(order=False)
class Money:
    """A non-negative amount in the smallest unit of its currency (msat, cents)."""

    currency: Currency
    amount: int = attrs.field(validator=_check_amount)

    @classmethod
    def zero(cls, currency: Currency) -> Money:
        return cls(currency, 0)

    def _same(self, other: Money) -> None:
        if other.currency is not self.currency:
            raise CurrencyMismatch(
                f"Currency doesnt match: {self.currency.value} vs {other.currency.value}"
            )

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.currency, self.amount + other.amount)

    def __sub__(self, other: Money) -> Money:
        """Subtract; a result below zero is an error, never a wrap or a clamp."""
        self._same(other)
        if other.amount > self.amount:
            raise NegativeAmount(f"Subtraction would underflow: {self} - {other}")
        return Money(self.currency, self.amount - other.amount)

    def times(self, factor: int) -> Money:
        if not isinstance(factor, int) or isinstance(factor, bool):
            raise TypeError(f"money is multiplied by an int, got {type(factor).__name__}")
        if factor < 0:
            raise NegativeAmount(f"cannot multiply money by {factor}")
        return Money(self.currency, self.amount * factor)

    def to_major(self) -> Decimal:
        """The exact value in major units (BTC, EUR …), whatever the decimal context."""
        exponent = 11 if self.currency is Currency.BTC else 2
        return Decimal(f"{self.amount}E-{exponent}")

    def __str__(self) -> str:
        """`EUR 1.32`, `BTC 0.00000001`: 2 decimals for fiat, 8 for BTC (msat half-up to sat)."""
        if self.currency is Currency.BTC:
            sats = (self.amount + MSAT_PER_SAT // 2) // MSAT_PER_SAT
            whole, frac = divmod(sats, 100_000_000)
            return f"BTC {whole}.{frac:08d}"
        whole, frac = divmod(self.amount, FIAT_MINOR_PER_MAJOR)
        return f"{self.currency.value} {whole}.{frac:02d}"


def round_msat_up_to_sat(msat: int) -> int:
    """Round millisatoshi up to a whole satoshi so the operator is never underpaid (R1.13)."""
    return -(-msat // MSAT_PER_SAT) * MSAT_PER_SAT


def lightning_invoice_msat(msat: int) -> int:
    """What a Lightning invoice for `msat` asks: whole sats, rounded up, at least one sat."""
    return max(MSAT_PER_SAT, round_msat_up_to_sat(msat))


def round_half_up(value: Decimal) -> int:
    """Round an exact decimal to the nearest integer, halves away from zero."""
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def floor_int(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def ceil_int(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))
