"""The invoice's reverse-charge statement: as the quote recorded it, derived for payments quoted
before quotes recorded it, and never beside tax charged."""

from __future__ import annotations

from decimal import Decimal

from tests.unit.test_invoice_rules import _buyer, _content, _payment

VALIDATED = _buyer(billing_tax_id="DE1", billing_vat_validated=True)
UNVALIDATED = _buyer(billing_tax_id="DE1")


def test_the_recorded_decision_wins_over_the_buyers_flags_now() -> None:
    reversed_quote = _payment(metadata={"tax_rate": "0", "reverse_charge": True})
    assert _content(reversed_quote, UNVALIDATED).reverse_charge
    plain_quote = _payment(metadata={"tax_rate": "0", "reverse_charge": False})
    assert not _content(plain_quote, VALIDATED).reverse_charge


def test_an_old_quote_is_reverse_charged_only_untaxed_and_with_a_qualifying_buyer() -> None:
    untaxed = _payment(metadata={"tax_rate": "0"})
    assert _content(untaxed, VALIDATED).reverse_charge
    assert not _content(untaxed, UNVALIDATED).reverse_charge
    assert _content(_payment(), VALIDATED).reverse_charge  # no metadata: the amounts say 0 %
    taxed = _payment(tax=190, metadata={"tax_rate": "19"})
    assert not _content(taxed, VALIDATED).reverse_charge
    assert not _content(_payment(tax=190), VALIDATED).reverse_charge  # 19 % from the amounts


def test_never_reverse_charge_beside_tax() -> None:
    # a record that contradicts the tax charged (a bad row) still never prints both
    taxed = _payment(tax=190, metadata={"tax_rate": "19", "reverse_charge": True})
    doc = _content(taxed, VALIDATED)
    assert doc.tax == 190 and not doc.reverse_charge
    assert doc.lines[0].tax_rate == Decimal(19)
