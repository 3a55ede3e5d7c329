"""What a Lightning payer sent beyond the invoice: valued down, kept in JSON, told plainly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.money import Currency
from domain.overpayment import OVERPAID_KEY, Overpaid, excess_value, invoice_note, overpaid_of


@pytest.mark.parametrize(
    ("msat", "currency", "rate", "value"),
    [
        (1_239_000, Currency.EUR, Decimal(100_000), 123),  # 123.9 cents: down, never up
        (999, Currency.EUR, Decimal(100_000), 0),  # less than a cent
        (1_000_000, Currency.EUR, Decimal("100000.5"), 100),  # 100.0005 cents
        (1_239_000, Currency.BTC, None, 1_239_000),  # BTC needs no rate
        (1_239_000, Currency.EUR, None, None),  # a fiat without a rate cannot be valued
        (1_239_000, Currency.EUR, Decimal(0), None),
    ],
)
def test_an_excess_is_valued_exactly_and_rounded_down(
    msat: int, currency: Currency, rate: Decimal | None, value: int | None
) -> None:
    assert excess_value(msat, currency, rate) == value


def test_the_record_round_trips_and_malformed_ones_read_as_none() -> None:
    excess = Overpaid(msat=5, credited=0, currency="EUR")
    assert overpaid_of({OVERPAID_KEY: excess.to_json()}) == excess
    assert overpaid_of({}) is None
    assert overpaid_of({OVERPAID_KEY: {"msat": -1, "credited": 0, "currency": "EUR"}}) is None
    assert overpaid_of({OVERPAID_KEY: {"msat": True, "credited": 0, "currency": "EUR"}}) is None


def test_the_invoice_says_the_excess_is_not_part_of_it() -> None:
    note = invoice_note(Overpaid(msat=1_239_000, credited=123, currency="EUR"), "EUR 1.23")
    assert "1239000 msat more" in note and "EUR 1.23 was added" in note
    assert "not part of this invoice" in note
    assert "too little" in invoice_note(Overpaid(msat=9, credited=0, currency="EUR"), "EUR 0.00")
