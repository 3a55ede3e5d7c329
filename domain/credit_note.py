"""The net and VAT a new credit note takes back, fixed when it is issued (EU VAT Dir. Art. 219)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from domain.invoice import CreditNote, Invoice, effective_tax_rate
from domain.tax import split_gross


def invoice_vat_rate(invoice: Invoice) -> Decimal:
    """The rate a credit note of the invoice is split at: that of its taxed line with the
    largest net (the service line; an "Account credit applied" line is negative at the same
    rate, the processing fee line is untaxed). Lines at two different rates are not split
    each at its own: the largest one's rate stands for the whole note. An invoice without a
    taxed line (none is issued so) is read off its own net and tax."""
    taxed = [line for line in invoice.document.lines if line.tax != 0]
    if not taxed:
        return effective_tax_rate(invoice.net, invoice.tax)
    return max(taxed, key=lambda line: line.net).tax_rate


def new_note_parts(
    amount: int, invoice: Invoice, issued: Iterable[tuple[int, int]]
) -> tuple[int, int]:
    """(net, tax) of a new credit note of gross `amount` on `invoice`, given the (net, tax)
    of the notes already issued on it (their sum plus `amount` is at most the total).

    - an invoice that charged no tax (reverse charge included): all net;
    - a note that brings the notes to the invoice total takes the rest of the invoice's net
      and tax, so all notes together take back exactly the invoice;
    - otherwise the gross split at the invoice's rate (`invoice_vat_rate`, net rounded half
      up), then capped so the notes never take back more tax (or net) than the invoice
      charged: the excess moves to the other part.

    The caps alone would end the last note on the rest too (its gross is exactly what is
    left); the second case says so outright, as the first says what a 0 % split gives.
    """
    notes_net = notes_tax = 0
    for net, tax in issued:
        notes_net, notes_tax = notes_net + net, notes_tax + tax
    if invoice.tax == 0:
        return amount, 0
    if notes_net + notes_tax + amount == invoice.total:
        return invoice.net - notes_net, invoice.tax - notes_tax
    net, tax = split_gross(amount, invoice_vat_rate(invoice))
    tax_room, net_room = max(0, invoice.tax - notes_tax), max(0, invoice.net - notes_net)
    if tax > tax_room:
        net, tax = net + tax - tax_room, tax_room
    if net > net_room:
        net, tax = net_room, tax + net - net_room
    return net, tax


def issued_parts(invoice: Invoice, notes: Iterable[CreditNote]) -> list[tuple[int, int]]:
    """The (net, tax) of the invoice's notes, oldest first, as `new_note_parts` needs them: a
    note's own, and for an old note without them the split this rule gives it in its place
    (what it would have stored), so a later note still ends on the invoice's exact parts."""
    parts: list[tuple[int, int]] = []
    for note in notes:
        if note.net is not None and note.tax is not None:
            parts.append((note.net, note.tax))
        else:
            parts.append(new_note_parts(note.amount, invoice, parts))
    return parts
