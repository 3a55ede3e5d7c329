"""The list prices an upgrade was quoted at, and whether a change since alters its charge."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from domain.enums import PaymentMethod
from domain.errors import DomainError
from domain.exchange import ExchangeRate, RateTable
from domain.intervals import Interval
from domain.money import Currency, Money
from domain.price_basis import RATES_KEY, rates_from_json
from domain.upgrade import quoted_expiry, upgrade_quote

#: the Upgrade payment's metadata key holding the list prices its charge was computed from
QUOTED_PRICES_KEY = "quoted_prices"


@attrs.frozen(kw_only=True)
class UpgradePrices:
    """What an upgrade charge is computed from besides time and rates: the VM's price per
    its interval now (`old`, the discount) and the target spec's monthly price (`new`)."""

    old: Money
    old_interval: Interval
    new: Money

    def to_json(self) -> dict[str, Any]:
        return {
            "old": _money_json(self.old),
            "old_interval": [int(self.old_interval.unit), self.old_interval.amount],
            "new": _money_json(self.new),
        }

    @classmethod
    def from_json(cls, value: Any) -> UpgradePrices | None:
        """The prices stored by `to_json`; anything else (absent, malformed) is None."""
        try:
            unit, amount = value["old_interval"]
            return cls(
                old=_money(value["old"]),
                old_interval=Interval(unit, amount),
                new=_money(value["new"]),
            )
        except (DomainError, KeyError, TypeError, ValueError, AttributeError):
            return None


def _money_json(money: Money) -> dict[str, Any]:
    return {"currency": money.currency.value, "amount": money.amount}


def _money(value: Any) -> Money:
    amount = value["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("amount is not an int")
    return Money(Currency.parse(value["currency"]), amount)


def _charge(
    prices: UpgradePrices,
    expires: datetime,
    at: datetime,
    method: PaymentMethod,
    rates: RateTable,
) -> Money | None:
    """The upgrade charge at these prices; None when it cannot be computed (a rate the quote
    did not store, a currency its method cannot charge)."""
    try:
        quote = upgrade_quote(
            prices.old, prices.old_interval, prices.new, expires, at, method, rates
        )
    except DomainError:
        return None
    return quote.upgrade.money


def quote_repriced(
    metadata: Any, in_force: UpgradePrices, method: PaymentMethod, quoted_at: datetime
) -> UpgradePrices | None:
    """The prices an Upgrade payment was quoted at, when its charge would be another amount
    at the prices `in_force` (None: the same charge, or a payment that did not record its
    prices and expiry).

    Both charges are computed the same way, at the quote's moment (`quoted_at`, the
    payment's creation), to the expiry it was pro-rated to and at the BTC rates it stored:
    only the prices differ, so time passing and rates moving never make a quote stale. A
    price change that leaves the charge as it was (a clamp at zero, a whole-sat rounding)
    does not either; any other difference does, cheaper too: a payment is booked one way, so
    one that paid more than the upgrade now costs is credited whole (nothing kept, nothing
    lost) and the payer quotes again. A charge that cannot be computed (a rate the quote
    did not store) counts as different.
    """
    meta = metadata if isinstance(metadata, Mapping) else {}
    quoted = UpgradePrices.from_json(meta.get(QUOTED_PRICES_KEY))
    expires = quoted_expiry(meta)
    if quoted is None or expires is None or quoted == in_force:
        return None
    expires = expires.astimezone(UTC)
    stored = rates_from_json(meta.get(RATES_KEY))
    rates = RateTable.of(ExchangeRate(c, r, quoted_at) for c, r in stored.items())
    was = _charge(quoted, expires, quoted_at, method, rates)
    now = _charge(in_force, expires, quoted_at, method, rates)
    return None if now is not None and now == was else quoted
