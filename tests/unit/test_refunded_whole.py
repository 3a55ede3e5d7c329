"""A refund to credit that gave an invoice back whole leaves credit notes nothing of it, also
when VAT-free account credit paid part of it (its lines lower `invoice.net`)."""

from __future__ import annotations

from decimal import Decimal

import attrs

from app.billing.refunded_credit import REFUNDED_INVOICES, _refunded_in
from domain.credit_note import creditable_parts
from domain.invoice import InvoiceLine
from domain.invoice_content import vat_free_lines
from tests.unit.test_credit_note_parts import _issued
from tests.unit.test_invoice_rules import _content, _payment


def test_a_whole_give_back_counts_what_notes_could_take_not_the_lowered_net() -> None:
    money = InvoiceLine(description="Renewal", net=81, tax_rate=Decimal(23), tax=19)
    paid_by_credit = vat_free_lines("Renewal", 100, 19, Decimal(23))
    lines = (money, *paid_by_credit)
    invoice = _issued(attrs.evolve(_content(_payment()), lines=lines))
    assert invoice.net == 81 - 19  # the credit's lines take its VAT off the net
    assert creditable_parts(invoice)[0] == 81
    record = {REFUNDED_INVOICES: [[invoice.id, None]]}
    assert _refunded_in(record, invoice) == 81
