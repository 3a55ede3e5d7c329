"""What a Lightning payer sent beyond the invoice: valued down, kept in JSON, told plainly."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.credit_conversion import convert_at
from domain.invoice import InvoiceLine
from domain.money import Currency, Money
from domain.overpayment import (
    OVERPAID_KEY,
    Overpaid,
    excess_value,
    invoice_note,
    overpaid_of,
    prepayment_split,
)
from domain.prepayment import PREPAYMENT_LINE, prepayment_line
from domain.tax import tax_on


@pytest.mark.parametrize(
    ("msat", "currency", "rate", "value"),
    [
        (1_239_000, Currency.EUR, Decimal(100_000), 123),  # 123.9 cents: down, never up
        (999, Currency.EUR, Decimal(100_000), 0),  # less than a cent
        (1_000_000, Currency.EUR, Decimal("100000.5"), 100),  # 100.0005 cents
        (1_239_000, Currency.BTC, None, 1_239_000),  # BTC needs no rate
        (1_239_000, Currency.EUR, None, None),  # a fiat without a rate cannot be valued
        (1_239_000, Currency.EUR, Decimal(0), None),
        (1_005_000, Currency.EUR, Decimal(100_000), 100),  # 100.5 cents: down, not half-up
        (10_000, Currency.EUR, Decimal(100_000), 1),  # exactly a cent
        (9_999, Currency.EUR, Decimal(100_000), 0),
        (10_001, Currency.EUR, Decimal(100_000), 1),
        (3, Currency.EUR, Decimal("3333333333.34"), 10),  # 10.00000000002 cents
        (3, Currency.EUR, Decimal("3333333333.33"), 9),  # 9.99999999999 cents
        (10**18, Currency.JPY, Decimal("1.5"), 1_500_000_000),  # JPY counts hundredths too
        (0, Currency.EUR, Decimal(100_000), 0),
        (0, Currency.BTC, None, 0),
        (0, Currency.EUR, None, None),  # no rate: not valued, however little arrived
        (1_239_000, Currency.EUR, Decimal(-100_000), None),
        (1_239_000, Currency.EUR, Decimal("NaN"), None),
        (1_239_000, Currency.EUR, Decimal("sNaN"), None),
        (1_239_000, Currency.EUR, Decimal("Infinity"), None),
    ],
)
def test_an_excess_is_valued_exactly_and_rounded_down(
    msat: int, currency: Currency, rate: Decimal | None, value: int | None
) -> None:
    assert excess_value(msat, currency, rate) == value


def test_a_negative_excess_is_a_bug() -> None:
    with pytest.raises(ValueError, match="never negative"):
        excess_value(-1, Currency.EUR, Decimal(100_000))


@given(
    msat=st.integers(0, 10**18),
    rate=st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(10**9), places=8),
)
def test_an_excess_is_the_exact_value_floored_and_as_a_credit_conversion_values_it(
    msat: int, rate: Decimal
) -> None:
    """Never more than arrived, less by under one unit; the same figure the account credit's
    conversion (`convert_at`, rounded down once) gives the same msat at the same rate."""
    value = excess_value(msat, Currency.EUR, rate)
    assert value is not None
    exact = Fraction(msat * 100) * Fraction(rate) / 10**11
    assert value <= exact < value + 1
    converted = convert_at([Money(Currency.BTC, msat)], Currency.EUR, {Currency.EUR: rate})
    assert converted is not None and converted.money.amount == value


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


@pytest.mark.parametrize(
    ("gross", "rate", "net", "tax"),
    [
        (1000, Decimal(23), 813, 187),  # 813.008…: the unit of rounding goes to the VAT
        (123, Decimal(23), 100, 23),  # exact
        (1, Decimal(23), 0, 1),  # too little to leave a unit net
        (1, Decimal("0.01"), 0, 1),  # 0.9999 net: nothing credited
        (101, Decimal(1), 100, 1),
        (100, Decimal(1), 99, 1),  # 99.0099…
        (123, Decimal(0), 123, 0),  # untaxed or reverse charge: all of it is net
        (0, Decimal(23), 0, 0),
        (1_000_000, Decimal("7.7"), 928_505, 71_495),  # 928 505.1…
        (10**15, Decimal(100), 5 * 10**14, 5 * 10**14),
    ],
)
def test_a_prepayment_is_split_into_net_credit_and_its_vat(
    gross: int, rate: Decimal, net: int, tax: int
) -> None:
    assert prepayment_split(gross, rate) == (net, tax)


@given(
    gross=st.integers(0, 10**18),
    rate=st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=2),
)
def test_a_prepayment_credits_never_more_than_arrived_and_adds_up(
    gross: int, rate: Decimal
) -> None:
    """Net + VAT is what arrived; the net with its exact VAT is never more than it (nor one
    unit more net), and the VAT is never below the tax D3 puts on the net."""
    net, tax = prepayment_split(gross, rate)
    assert net + tax == gross and net >= 0 and tax >= 0
    factor = 1 + Fraction(rate) / 100
    assert net * factor <= gross < (net + 1) * factor
    assert tax >= tax_on(net, rate)


def test_a_negative_prepayment_is_a_bug() -> None:
    with pytest.raises(ValueError, match="never negative"):
        prepayment_split(-1, Decimal(23))


def test_a_taxed_prepayment_round_trips_and_an_old_record_reads_untaxed() -> None:
    taxed = Overpaid(msat=1_239_000, credited=100, currency="EUR", tax=23, tax_rate=Decimal(23))
    assert overpaid_of({OVERPAID_KEY: taxed.to_json()}) == taxed
    assert taxed.received == 123
    old = {"msat": 1_239_000, "credited": 123, "currency": "EUR"}
    assert overpaid_of({OVERPAID_KEY: old}) == Overpaid(
        msat=1_239_000, credited=123, currency="EUR"
    )
    assert Overpaid(msat=1, credited=0, currency="EUR").to_json() == {
        "msat": 1,
        "credited": 0,
        "currency": "EUR",
    }
    for bad in ({"tax": -1}, {"tax_rate": 23}, {"tax_rate": "x"}, {"tax_rate": "-1"}):
        assert overpaid_of({OVERPAID_KEY: {**old, **bad}}) is None


def test_the_invoice_says_a_taxed_excess_is_invoiced_as_a_prepayment() -> None:
    taxed = Overpaid(msat=1_239_000, credited=100, currency="EUR", tax=23, tax_rate=Decimal(23))
    note = invoice_note(taxed, "EUR 1.00")
    assert "invoiced above as a prepayment" in note and "EUR 1.00" in note
    assert "not part of this invoice" not in note


def test_the_invoice_line_of_a_prepayment_is_its_net_and_vat_in_the_invoice_currency() -> None:
    taxed = Overpaid(msat=1_239_000, credited=100, currency="EUR", tax=23, tax_rate=Decimal(23))
    assert prepayment_line(taxed, "EUR") == InvoiceLine(
        description=PREPAYMENT_LINE, net=100, tax_rate=Decimal(23), tax=23
    )
    assert prepayment_line(taxed, "BTC") is None
    assert prepayment_line(None, "EUR") is None
    assert prepayment_line(Overpaid(msat=1_239_000, credited=123, currency="EUR"), "EUR") is None
    assert prepayment_line(attrs.evolve(taxed, credited=0), "EUR") is None


def test_an_upgrades_vat_free_excess_round_trips_and_is_invoiced_whole_at_zero() -> None:
    """An untaxed upgrade's excess is VAT-free credit: recorded with `vat_free`, its line the
    whole value at 0 %, its note says so; older records (no key) read as not VAT-free."""
    free = Overpaid(
        msat=10_000_000,
        credited=1000,
        currency="EUR",
        tax=0,
        tax_rate=Decimal(0),
        vat_free=True,
    )
    raw = free.to_json()
    assert raw["vat_free"] is True
    assert overpaid_of({OVERPAID_KEY: raw}) == free
    assert "vat_free" not in attrs.evolve(free, vat_free=False).to_json()
    assert overpaid_of({OVERPAID_KEY: {**raw, "vat_free": "yes"}}) is None
    assert prepayment_line(free, "EUR") == InvoiceLine(
        description=PREPAYMENT_LINE, net=1000, tax_rate=Decimal(0), tax=0
    )
    note = invoice_note(free, "EUR 10.00")
    assert "without VAT" in note and "VAT-free credit" in note and "EUR 10.00" in note
