"""The net and VAT of a credit note, fixed at issue: split at the invoice's rate, capped by what
the invoice charged, and the last note takes the rest, so all notes take back the invoice."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.credit_note import (
    credit_room,
    creditable_parts,
    invoice_vat_rate,
    issued_parts,
    new_note_parts,
)
from domain.invoice import CreditNote, Invoice, InvoiceContent, InvoiceLine, stored_note_parts
from domain.prepayment import PREPAYMENT_LINE
from domain.tax import split_gross, tax_on
from tests.unit.test_invoice_rules import NOW, _content, _invoice, _payment


def _issued(content: InvoiceContent) -> Invoice:
    return attrs.evolve(_invoice(content.net, content.tax), content=content.to_json())


def _lines(*lines: tuple[int, str, int]) -> Invoice:
    """An invoice of these (net, rate, tax) lines."""
    return _issued(
        attrs.evolve(
            _content(_payment()),
            lines=tuple(
                InvoiceLine(description=f"line {n}", net=net, tax_rate=Decimal(rate), tax=tax)
                for n, (net, rate, tax) in enumerate(lines)
            ),
        )
    )


def _with_prepayment(invoice: Invoice, net: int, rate: str, tax: int) -> Invoice:
    """`invoice` with a "Prepayment to account credit" line of (net, rate, tax) added."""
    doc = invoice.document
    line = InvoiceLine(description=PREPAYMENT_LINE, net=net, tax_rate=Decimal(rate), tax=tax)
    return _issued(attrs.evolve(doc, lines=(*doc.lines, line)))


def _note(amount: int, net: int | None = None, tax: int | None = None) -> CreditNote:
    return CreditNote(
        id=1,
        company_id=1,
        series="CN-2027",
        seq=1,
        number="CN-2027-000001",
        invoice_id=1,
        issued_at=NOW,
        currency="EUR",
        amount=amount,
        reason="r",
        net=net,
        tax=tax,
    )


VAT23 = _lines((1000, "23", 230))


def test_a_partial_note_is_split_at_the_invoices_rate_net_rounded_half_up() -> None:
    assert new_note_parts(123, VAT23, []) == (100, 23)
    assert new_note_parts(500, VAT23, []) == (407, 93)  # 406.50… rounds up
    assert new_note_parts(500, VAT23, [(100, 23)]) == (407, 93)
    assert split_gross(500, Decimal(23)) == (407, 93)
    assert split_gross(0, Decimal(23)) == (0, 0)


def test_three_notes_up_to_the_total_take_back_exactly_the_invoices_net_and_tax() -> None:
    """410 each: split alone, each is 333 + 77, and three of them 999 + 231 (one cent of VAT
    too much); the last one takes the rest instead."""
    issued: list[tuple[int, int]] = []
    for _ in range(3):
        issued.append(new_note_parts(410, VAT23, issued))
    assert issued == [(333, 77), (333, 77), (334, 76)]
    assert (sum(n for n, _ in issued), sum(t for _, t in issued)) == (1000, 230)


def test_the_notes_never_take_back_more_tax_than_the_invoice_charged() -> None:
    """An untaxed fee line: once the notes took back all the VAT, the rest is net only."""
    with_fee = _lines((1000, "23", 230), (100, "0", 0))
    first = new_note_parts(1230, with_fee, [])
    assert first == (1000, 230)
    assert new_note_parts(99, with_fee, [first]) == (99, 0)  # not 80 + 19
    # one cent notes round to net: once the invoice's net is used up, the rest is tax
    assert new_note_parts(1, VAT23, [(1, 0)] * 1000) == (0, 1)


def test_a_note_of_a_known_net_keeps_it_and_the_vat_on_it_within_the_invoice() -> None:
    """A refund's 113 + floor(113 × 23 %) = 138: split alone 112 + 26, a cent more VAT than
    was charged on 113; given its net, the note keeps 113 + 25. The caps still hold: past
    the invoice's VAT the excess is net, and the last note takes the rest."""
    vat23 = _lines((132, "23", 30))
    assert new_note_parts(138, vat23, []) == (112, 26)
    assert new_note_parts(138, vat23, [], net=113) == (113, 25)
    assert new_note_parts(24, vat23, [(113, 25)]) == (19, 5)  # the rest
    assert new_note_parts(10, VAT23, [(900, 228)], net=5) == (8, 2)  # 2 of VAT left
    assert new_note_parts(20, VAT23, [(990, 200)], net=15) == (10, 10)  # 10 of net left
    with pytest.raises(ValueError):
        new_note_parts(10, VAT23, [], net=11)


def test_an_untaxed_or_reverse_charged_invoice_is_credited_net_only() -> None:
    untaxed = _lines((1000, "0", 0))
    assert new_note_parts(400, untaxed, []) == (400, 0)
    assert new_note_parts(600, untaxed, [(400, 0)]) == (600, 0)


def test_an_invoice_with_a_credit_line_is_split_at_its_lines_rate() -> None:
    """1.32 EUR at 23 % with 0.63 credit applied: the invoice is 0.69 + 0.15 VAT, which reads
    as 22 %; a note is split at the 23 % the lines print."""
    meta = {"credit_applied": {"amount": 63, "currency": "EUR"}, "tax_rate": "23"}
    invoice = _issued(_content(_payment(amount=69, tax=15, metadata=meta)))
    assert (invoice.net, invoice.tax) == (69, 15) and len(invoice.document.lines) == 2
    assert invoice_vat_rate(invoice) == Decimal(23)
    assert new_note_parts(80, invoice, []) == (65, 15)  # 22 % would give 66 + 14
    assert new_note_parts(84, invoice, [(0, 0)]) == (69, 15)


def test_lines_at_two_rates_split_at_the_largest_ones() -> None:
    mixed = _lines((100, "9", 9), (1000, "23", 230))
    assert invoice_vat_rate(mixed) == Decimal(23)
    assert new_note_parts(123, mixed, []) == (100, 23)


def test_an_old_note_without_parts_counts_as_the_rule_splits_it() -> None:
    old = [_note(410), _note(410, 333, 77)]
    assert stored_note_parts(old[0], VAT23) is None  # shown as before: no split made up
    assert stored_note_parts(old[1], VAT23) == (333, 77)
    assert stored_note_parts(_note(1230), VAT23) == (1000, 230)
    # without its invoice (a note just issued, shown alone): its own split, or none
    assert stored_note_parts(old[1], None) == (333, 77)
    assert stored_note_parts(_note(1230), None) is None
    assert issued_parts(VAT23, old) == [(333, 77), (333, 77)]
    assert new_note_parts(410, VAT23, issued_parts(VAT23, old)) == (334, 76)


#: 10.00 at 23 % paid, 8.13 + 1.87 VAT more kept as credit: notes take back 12.30 at most
PREPAID = _with_prepayment(VAT23, 813, "23", 187)


def test_notes_may_take_back_an_invoice_less_its_prepayment_line() -> None:
    assert (PREPAID.net, PREPAID.tax, PREPAID.total) == (1813, 417, 2230)
    assert creditable_parts(PREPAID) == (1000, 230)
    assert credit_room(PREPAID, []) == 1230
    assert credit_room(PREPAID, [_note(1000, 813, 187)]) == 230
    assert credit_room(PREPAID, [_note(1230, 1000, 230), _note(1)]) == 0  # never below 0
    # the note that takes back all of it ends on the service line's own net and VAT
    assert new_note_parts(1230, PREPAID, []) == (1000, 230)
    assert new_note_parts(410, PREPAID, [(333, 77), (333, 77)]) == (334, 76)


def test_an_invoice_without_a_prepayment_can_take_back_its_total() -> None:
    assert creditable_parts(VAT23) == (VAT23.net, VAT23.tax)
    assert credit_room(VAT23, [_note(123, 100, 23)]) == VAT23.total - 123


def _described(invoice: Invoice, *described: tuple[str, int, str, int]) -> Invoice:
    """`invoice` with these (description, net, rate, tax) lines added."""
    doc = invoice.document
    lines = tuple(
        InvoiceLine(description=what, net=net, tax_rate=Decimal(rate), tax=tax)
        for what, net, rate, tax in described
    )
    return _issued(attrs.evolve(doc, lines=(*doc.lines, *lines)))


def test_a_payment_credited_after_its_invoice_leaves_only_its_fee_creditable() -> None:
    """Its value became account credit after the invoice was issued (`credited`): the service
    and the credit it applied, net and VAT, stay on the balance; the untaxed fee does not,
    and its notes bear no VAT; an excess kept as credit stays out either way."""
    card = _described(
        VAT23,
        ("Account credit applied", -100, "23", -23),
        ("Payment processing fee", 30, "0", 0),
    )
    assert creditable_parts(card) == (930, 207)
    assert creditable_parts(card, credited=True) == (30, 0)
    assert credit_room(card, [], credited=True) == 30
    assert credit_room(card, [_note(20, 20, 0)], credited=True) == 10
    assert invoice_vat_rate(card, credited=True) == Decimal(0)
    assert new_note_parts(30, card, [], credited=True) == (30, 0)
    assert issued_parts(card, [_note(20)], credited=True) == [(20, 0)]
    assert creditable_parts(VAT23, credited=True) == (0, 0)
    assert credit_room(_with_prepayment(VAT23, 813, "23", 187), [], credited=True) == 0


def test_an_untaxed_supply_with_a_taxed_prepayment_is_credited_net_only() -> None:
    """An upgrade charges no tax, its excess bears the buyer's 23 %: its notes bear none."""
    upgrade = _with_prepayment(_lines((500, "0", 0)), 813, "23", 187)
    assert invoice_vat_rate(upgrade) == Decimal(0)
    assert new_note_parts(300, upgrade, []) == (300, 0)
    assert new_note_parts(200, upgrade, [(300, 0)]) == (200, 0)


def test_a_prepayment_larger_than_the_service_does_not_set_the_notes_rate() -> None:
    """A 9 % service with a larger prepayment at 23 % (another rate recorded for credit)."""
    reduced = _with_prepayment(_lines((1000, "9", 90)), 5000, "23", 1150)
    assert invoice_vat_rate(reduced) == Decimal(9)
    assert new_note_parts(109, reduced, []) == (100, 9)


@given(
    rate=st.sampled_from(["19", "23", "8.1", "21"]),
    net=st.integers(1, 10**7),
    cuts=st.lists(st.integers(1, 10**7), max_size=6),
)
def test_any_notes_add_up_and_stay_within_the_invoice(rate: str, net: int, cuts: list[int]) -> None:
    invoice = _lines((net, rate, tax_on(net, Decimal(rate))))
    issued: list[tuple[int, int]] = []
    left = invoice.total
    for cut in [*cuts, invoice.total]:
        amount = min(cut, left)
        if amount == 0:
            break
        part = new_note_parts(amount, invoice, issued)
        assert sum(part) == amount and min(part) >= 0
        issued.append(part)
        left -= amount
        assert sum(n for n, _ in issued) <= invoice.net
        assert sum(t for _, t in issued) <= invoice.tax
    assert (sum(n for n, _ in issued), sum(t for _, t in issued)) == (invoice.net, invoice.tax)
