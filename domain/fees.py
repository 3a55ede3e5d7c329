"""Payment-processing fee grossed up onto the charged amount (pricing.md §9, DECISIONS D4)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from domain.enums import PaymentMethod
from domain.errors import InvalidProcessingFeeRate, UnknownCurrency
from domain.exchange import RateTable, convert
from domain.model import PaymentMethodConfig
from domain.money import Currency, Money


class MisconfiguredProcessingFee(InvalidProcessingFeeRate):
    """A stored fee config that was never validated (e.g. adopted from a legacy database).

    Raised while pricing rather than producing nonsense; it is the operator's fault, not the
    buyer's, so it is not a 400.
    """

    kind = "unprocessable"


def validate_fee_rate(rate: Decimal | None) -> Decimal | None:
    """Refuse a rate < 0 % or ≥ 100 % when a config is saved (D4); None means no fee."""
    if rate is None:
        return None
    if not isinstance(rate, Decimal) or not rate.is_finite():
        raise InvalidProcessingFeeRate(f"processing fee rate must be a decimal, got {rate!r}")
    if rate < 0 or rate >= 100:
        raise InvalidProcessingFeeRate(
            f"processing fee rate must be at least 0 % and below 100 %, got {rate} %"
        )
    return rate


def validate_fee_config(rate: Decimal | None, base: int | None, currency: str | None) -> None:
    """Save-time check of a fee config: rate per D4, base ≥ 0, currency known if given."""
    validate_fee_rate(rate)
    if base is not None and (isinstance(base, bool) or not isinstance(base, int) or base < 0):
        raise InvalidProcessingFeeRate(f"processing fee base must be an integer ≥ 0, got {base!r}")
    if currency is not None and currency.strip():
        try:
            Currency.parse(currency)
        except UnknownCurrency:
            raise InvalidProcessingFeeRate(f"unknown processing fee currency: {currency}") from None


def _ceil(value: Fraction) -> int:
    return -(-value.numerator // value.denominator)


def _base_currency(config: PaymentMethodConfig, charged: Currency) -> Currency:
    """The base fee's currency; empty or unparsable falls back to the charged one (R9.3)."""
    text = config.processing_fee_currency
    if text is None or not text.strip():
        return charged
    try:
        return Currency.parse(text)
    except UnknownCurrency:
        return charged


def gross_up_fee(amount: int, rate_percent: Decimal, base: int) -> int:
    """ceil(amount·r/(1−r)) + (ceil(base/(1−r)) if r > 0 else base), exactly (D4, R9.3).

    The gross-up makes the operator net `amount + base` after the provider keeps r of the order.
    """
    try:
        validate_fee_rate(rate_percent)
    except InvalidProcessingFeeRate as err:
        raise MisconfiguredProcessingFee(err.message) from None
    r = Fraction(rate_percent) / 100
    keep = 1 - r
    pct_fee = _ceil(amount * r / keep)
    base_fee = _ceil(base / keep) if r > 0 else base
    return pct_fee + base_fee


def processing_fee(
    amount: Money,
    method: PaymentMethod,
    config: PaymentMethodConfig | None,
    rates: RateTable,
    now: datetime,
) -> Money:
    """The fee on a charged amount, in its currency (R9.1–R9.3 with D4).

    Lightning, a missing or disabled config, or a missing rate/base → 0. The fixed base fee is
    converted into the charged currency when its own currency differs (D4 fixes R9.3's "never
    converted"), rounding half-up as every reverse conversion does (D2).
    """
    zero = Money.zero(amount.currency)
    if method is PaymentMethod.LIGHTNING or config is None or not config.enabled:
        return zero
    if config.payment_method is not method:
        raise ValueError(f"fee config {config.id} is for {config.payment_method.display_name}")
    if config.processing_fee_rate is None or config.processing_fee_base is None:
        return zero
    base = Money(_base_currency(config, amount.currency), config.processing_fee_base)
    if base.amount and base.currency is not amount.currency:
        base = convert(base, amount.currency, rates, now)
    fee = gross_up_fee(amount.amount, config.processing_fee_rate, base.amount)
    return Money(amount.currency, fee)
