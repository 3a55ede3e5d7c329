"""When an invoice states that no VAT is due because the buyer is outside the EU: only when
no line charges any, at a rate of 0, to a buyer known to be outside the EU of a seller in it."""

from __future__ import annotations

from decimal import Decimal

import attrs

from domain.invoice import InvoiceContent, InvoiceLine, is_outside_eu_supply
from domain.invoice_content import invoice_outside_eu
from tests.unit.test_invoice_rules import SELLER, _buyer, _content, _payment


def test_the_countries_that_make_an_export() -> None:
    assert is_outside_eu_supply("IRL", "USA") and is_outside_eu_supply("DEU", "CHE")
    assert not is_outside_eu_supply("IRL", "DEU")  # inside the EU
    assert not is_outside_eu_supply("IRL", None)  # not known to be outside
    assert not is_outside_eu_supply("USA", "CAN") and not is_outside_eu_supply(None, "USA")


def test_an_untaxed_invoice_to_a_us_buyer_states_it_and_round_trips() -> None:
    doc = _content(_payment(metadata={"tax_rate": "0"}), _buyer(country_code="us"))
    assert doc.outside_eu and doc.tax == 0
    assert InvoiceContent.from_json(doc.to_json()) == doc
    old = {k: v for k, v in doc.to_json().items() if k != "outside_eu"}
    assert not InvoiceContent.from_json(old).outside_eu  # issued before: prints as it was


def test_never_with_tax_nor_a_rate() -> None:
    """A US sales tax configured (10 %): taxed, no statement. A real rate on an amount too
    small to bear a cent of tax (0.04 at 10 %: 0) is no export either."""
    us = _buyer(country_code="US")
    assert not _content(_payment(tax=100, metadata={"tax_rate": "10"}), us).outside_eu
    tiny = _content(_payment(amount=4, tax=0, metadata={"tax_rate": "10"}), us)
    assert tiny.tax == 0 and not tiny.outside_eu
    lines = [InvoiceLine(description="x", net=100, tax_rate=Decimal(0), tax=0)]
    assert invoice_outside_eu(lines, False, SELLER, us)
    assert not invoice_outside_eu(lines, True, SELLER, us)  # reverse charged instead
    foreign = attrs.evolve(SELLER, country_code="US")
    assert not invoice_outside_eu(lines, False, foreign, us)
