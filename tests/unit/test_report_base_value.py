"""The revenue report's base-currency value of a Lightning payment uses the quote's own rate
of the base currency, not its `rate` column when that is another currency's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from app.admin.reports import base_value
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.model import SubscriptionPayment

NOW = datetime(2026, 6, 1, tzinfo=UTC)
MSAT = 1_650_000


def _payment(rate: Decimal, metadata: Any) -> SubscriptionPayment:
    return SubscriptionPayment(
        id=b"\x01" * 32,
        subscription_id=1,
        user_id=1,
        created=NOW,
        expires=NOW + timedelta(hours=1),
        amount=MSAT,
        currency="BTC",
        payment_method=PaymentMethod.LIGHTNING,
        payment_type=SubscriptionPaymentType.RENEWAL,
        external_data="lnbc1",
        rate=rate,
        metadata=metadata,
    )


def test_the_quotes_own_rate_of_the_base_currency_values_the_msat() -> None:
    """Priced in GBP (its rate column, 80 000), listed and reported in EUR (100 000)."""
    quoted = _payment(Decimal(80_000), {"rates": {"EUR": "100000", "GBP": "80000"}})
    assert base_value(MSAT, quoted, "EUR", "EUR") == 165  # not 132 at the GBP rate
    assert base_value(MSAT, quoted, "GBP", "EUR") is None  # no listed-to-base link


def test_without_stored_rates_the_rate_column_is_the_listed_currencys() -> None:
    assert base_value(MSAT, _payment(Decimal(100_000), None), "EUR", "EUR") == 165
    assert base_value(MSAT, _payment(Decimal(1), None), "EUR", "EUR") is None  # passthrough


def test_stored_rates_without_the_base_currency_give_no_value() -> None:
    quoted = _payment(Decimal(80_000), {"rates": {"GBP": "80000"}})
    assert base_value(MSAT, quoted, "EUR", "EUR") is None
