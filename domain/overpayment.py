"""What a Lightning payer sent beyond the invoice: its value, its VAT, and how it is recorded."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import attrs

from domain.credit_conversion import convert_at
from domain.money import Currency, Money

#: key of a paid payment's `metadata`: the msat received beyond its total and the credit booked
OVERPAID_KEY = "overpaid"


@attrs.frozen(kw_only=True)
class Overpaid:
    """`msat` received beyond the payment's total; `credited` of it booked as account credit,
    in smallest units of `currency` (0: too small to be worth a unit, or not valued).

    Money kept as credit for later supplies is a prepayment and bears VAT when received:
    with `tax_rate` (percent) recorded, `credited` is its net value and `tax` the VAT on it
    (`prepayment_split`), which the payment's invoice declares on a line of its own (money
    that came after its invoice was issued: the admins are told to invoice it). A record
    without `tax_rate` was written before prepayments were taxed: all of it was credited.

    `vat_free`: paid with an untaxed upgrade, the money bore no VAT, as the upgrade's own did
    not: all of it is credited as VAT-free credit (`tax_rate` 0, no VAT declared now; the
    taxed supply it later pays declares it), as an upgrade not applied is kept."""

    msat: int
    credited: int
    currency: str
    tax: int = 0
    tax_rate: Decimal | None = None
    vat_free: bool = False

    @property
    def received(self) -> int:
        """What the excess was worth in `currency`, rounded down: the credit and its VAT."""
        return self.credited + self.tax

    def to_json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "msat": self.msat,
            "credited": self.credited,
            "currency": self.currency,
        }
        if self.tax or self.tax_rate is not None:
            raw["tax"] = self.tax
            raw["tax_rate"] = None if self.tax_rate is None else str(self.tax_rate)
        if self.vat_free:
            raw["vat_free"] = True
        return raw

    @classmethod
    def from_json(cls, raw: object) -> Overpaid | None:
        """The record kept in a payment's metadata; None when absent or malformed."""
        if not isinstance(raw, Mapping):
            return None
        msat, credited, currency = (
            _count(raw.get("msat")),
            _count(raw.get("credited")),
            raw.get("currency"),
        )
        if msat is None or credited is None or not isinstance(currency, str):
            return None
        tax, (rate_ok, rate) = _count(raw.get("tax", 0)), _rate(raw.get("tax_rate"))
        vat_free = raw.get("vat_free", False)
        if tax is None or not rate_ok or not isinstance(vat_free, bool):
            return None
        return cls(
            msat=msat,
            credited=credited,
            currency=currency,
            tax=tax,
            tax_rate=rate,
            vat_free=vat_free,
        )


def invoice_note(excess: Overpaid, credited: str) -> str:
    """The sentence an invoice prints below its totals; `credited` is the credit as text."""
    if excess.vat_free and excess.credited:
        return (
            f"The payer sent {excess.msat} msat more than the amount due; it is invoiced above "
            f"as a prepayment without VAT, and all of it, {credited}, was added to the account "
            "credit as VAT-free credit (its VAT is due when it pays a taxed supply)."
        )
    if excess.tax_rate is not None and excess.credited:
        return (
            f"The payer sent {excess.msat} msat more than the amount due; it is invoiced above "
            f"as a prepayment, and its net value, {credited}, was added to the account credit."
        )
    what = f"The payer sent {excess.msat} msat more than this invoice"
    if not excess.credited:
        return f"{what}; it was too little to credit. It is not part of this invoice."
    return f"{what}; {credited} was added to the account credit. It is not part of this invoice."


def prepayment_split(gross: int, rate_percent: Decimal) -> tuple[int, int]:
    """(net, VAT) of `gross` smallest units received as a prepayment taxed at `rate_percent`.

    Net = floor(gross × 100 / (100 + rate)), exactly: the credit with its exact VAT is never
    worth more than what arrived. The VAT is the rest, so the two add up to what was
    received and a unit of rounding goes to the VAT (it is never below D3's floor of the
    net's tax). At 0 % (no tax, reverse charge) all of it is net."""
    if gross < 0 or rate_percent < 0:
        raise ValueError("a prepayment and its rate are never negative")
    exact = Fraction(gross * 100) / (100 + Fraction(rate_percent))
    return exact.numerator // exact.denominator, gross - exact.numerator // exact.denominator


def _count(value: object) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if ok and isinstance(value, int) else None


def _rate(value: object) -> tuple[bool, Decimal | None]:
    """Whether a recorded tax percent is well formed, and it (None: none recorded)."""
    if value is None:
        return True, None
    if not isinstance(value, str):
        return False, None
    try:
        rate = Decimal(value)
    except InvalidOperation:
        return False, None
    return (True, rate) if rate.is_finite() and rate >= 0 else (False, None)


def overpaid_of(meta: Mapping[str, Any]) -> Overpaid | None:
    """The overpayment recorded in a payment's metadata (None: it was not overpaid)."""
    return Overpaid.from_json(meta.get(OVERPAID_KEY))


def excess_value(msat: int, target: Currency, btc_rate: Decimal | None) -> int | None:
    """`msat` in smallest units of `target`, exactly and rounded DOWN (the payer is never
    credited more than arrived), as account credit is converted (`convert_at`); for a fiat
    at `btc_rate` (its price of one BTC). None when a fiat has no usable rate (none, not a
    finite number, or not above 0), even for no msat."""
    if msat < 0:
        raise ValueError("an excess is never negative")
    if target is Currency.BTC:
        return msat
    if btc_rate is None or not btc_rate.is_finite() or btc_rate <= 0:
        return None
    converted = convert_at([Money(Currency.BTC, msat)], target, {target: btc_rate})
    return None if converted is None else converted.money.amount
