"""Whether a paid upgrade's charge changed with the prices since its quote (D23)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest

from domain.enums import IntervalType, PaymentMethod
from domain.exchange import ExchangeRate, RateTable
from domain.intervals import MONTHLY, Interval
from domain.money import Currency, Money
from domain.price_basis import RATES_KEY, rates_json
from domain.upgrade import QUOTED_EXPIRY_KEY, quoted_for, upgrade_quote
from domain.upgrade_prices import QUOTED_PRICES_KEY, UpgradePrices, quote_repriced

QUOTED_AT = datetime(2026, 3, 10, 8, 30, 15, 123456, tzinfo=UTC)
EXPIRES = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
EUR_RATE = Decimal("100000")
LN = PaymentMethod.LIGHTNING


def _prices(old: int = 1000, new: int = 3000, currency: Currency = Currency.EUR) -> UpgradePrices:
    return UpgradePrices(
        old=Money(Currency.EUR, old), old_interval=MONTHLY, new=Money(currency, new)
    )


def _meta(prices: UpgradePrices) -> dict[str, Any]:
    return {
        "new_cpu": 4,
        "new_memory": None,
        "new_disk": None,
        QUOTED_EXPIRY_KEY: quoted_for(EXPIRES),
        QUOTED_PRICES_KEY: prices.to_json(),
        RATES_KEY: rates_json({Currency.EUR: EUR_RATE}),
    }


def _charge(prices: UpgradePrices, method: PaymentMethod = LN, at: datetime = QUOTED_AT) -> Money:
    rates = RateTable.of([ExchangeRate(Currency.EUR, EUR_RATE, at)])
    quote = upgrade_quote(prices.old, prices.old_interval, prices.new, EXPIRES, at, method, rates)
    return quote.upgrade.money


def test_the_prices_round_trip_through_json() -> None:
    prices = UpgradePrices(
        old=Money(Currency.USD, 132),
        old_interval=Interval(IntervalType.YEAR, 2),
        new=Money(Currency.EUR, 7),
    )
    assert UpgradePrices.from_json(prices.to_json()) == prices


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "text",
        {"old": {"currency": "EUR", "amount": 1}, "new": {"currency": "EUR", "amount": 2}},
        {**_prices().to_json(), "new": {"currency": "XXX", "amount": 2}},
        {**_prices().to_json(), "old": {"currency": "EUR", "amount": "1"}},
        {**_prices().to_json(), "old": {"currency": "EUR", "amount": True}},
        {**_prices().to_json(), "old_interval": [99, 1]},
    ],
)
def test_malformed_prices_are_unknown(stored: Any) -> None:
    assert UpgradePrices.from_json(stored) is None


def test_the_same_prices_are_never_stale() -> None:
    prices = _prices()
    assert quote_repriced(_meta(prices), prices, LN, QUOTED_AT) is None


def test_a_row_without_its_prices_or_expiry_is_not_judged() -> None:
    meta = _meta(_prices())
    for key in (QUOTED_PRICES_KEY, QUOTED_EXPIRY_KEY):
        old_row = {k: v for k, v in meta.items() if k != key}
        assert quote_repriced(old_row, _prices(new=9000), LN, QUOTED_AT) is None
    assert quote_repriced(None, _prices(new=9000), LN, QUOTED_AT) is None


@pytest.mark.parametrize("method", [LN, PaymentMethod.REVOLUT])
@pytest.mark.parametrize(
    "now", [_prices(new=3100), _prices(new=2900), _prices(old=900), _prices(old=1100)]
)
def test_another_charge_is_stale_dearer_or_cheaper(
    now: UpgradePrices, method: PaymentMethod
) -> None:
    quoted = _prices()
    assert _charge(now, method) != _charge(quoted, method)
    assert quote_repriced(_meta(quoted), now, method, QUOTED_AT) == quoted


def test_a_changed_interval_is_stale() -> None:
    quoted = _prices()
    now = attrs.evolve(quoted, old_interval=Interval(IntervalType.MONTH, 3))
    assert quote_repriced(_meta(quoted), now, LN, QUOTED_AT) == quoted


def test_a_change_that_leaves_the_charge_as_it_was_is_not_stale() -> None:
    """The upgrade's charge is clamped at 0 and the pro-rated values are floored to the
    cent: a price change below what either can see leaves the charge, so it stands."""
    free, still_free = _prices(old=5000, new=3000), _prices(old=6000, new=3000)
    assert _charge(free) == _charge(still_free) == Money(Currency.BTC, 0)
    assert quote_repriced(_meta(free), still_free, LN, QUOTED_AT) is None
    late = EXPIRES - timedelta(hours=24)  # 24 h of a 744 h month: 96.77 cents, 96.80 with one more
    cent_more = _prices(new=3001)
    assert _charge(cent_more, at=late) == _charge(_prices(), at=late)
    assert quote_repriced(_meta(_prices()), cent_more, LN, late) is None
    assert quote_repriced(_meta(_prices()), _prices(new=3100), LN, late) == _prices()


def test_the_charge_is_judged_at_the_quotes_moment_and_rates() -> None:
    """Time passing and rates moving never make a quote stale: both charges are computed at
    the quote's moment, expiry and stored rates, even when those rates are long stale."""
    prices = _prices()
    later = QUOTED_AT + timedelta(days=3)
    assert quote_repriced(_meta(prices), prices, LN, later) is None
    dearer = _prices(new=3100)
    assert quote_repriced(_meta(prices), dearer, LN, QUOTED_AT) == prices


def test_a_charge_that_cannot_be_computed_is_stale() -> None:
    """Re-priced in a currency the quote stored no rate for: its charge cannot be known."""
    quoted = _prices()
    in_usd = _prices(currency=Currency.USD)
    assert quote_repriced(_meta(quoted), in_usd, LN, QUOTED_AT) == quoted
