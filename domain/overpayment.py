"""What a Lightning payer sent beyond the invoice: its value, and how the payment records it."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from domain.credit_conversion import convert_at
from domain.money import Currency, Money

#: key of a paid payment's `metadata`: the msat received beyond its total and the credit booked
OVERPAID_KEY = "overpaid"


@attrs.frozen(kw_only=True)
class Overpaid:
    """`msat` received beyond the payment's total; `credited` of it booked as account credit,
    in smallest units of `currency` (0: too small to be worth a unit, or not valued)."""

    msat: int
    credited: int
    currency: str

    def to_json(self) -> dict[str, Any]:
        return {"msat": self.msat, "credited": self.credited, "currency": self.currency}

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
        return cls(msat=msat, credited=credited, currency=currency)


def invoice_note(excess: Overpaid, credited: str) -> str:
    """The sentence an invoice prints below its totals; `credited` is the credit as text."""
    what = f"The payer sent {excess.msat} msat more than this invoice"
    if not excess.credited:
        return f"{what}; it was too little to credit. It is not part of this invoice."
    return f"{what}; {credited} was added to the account credit. It is not part of this invoice."


def _count(value: object) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if ok and isinstance(value, int) else None


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
