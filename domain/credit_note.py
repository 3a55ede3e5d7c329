"""The net and VAT a new credit note takes back, fixed when it is issued (EU VAT Dir. Art. 219)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from domain.invoice import (
    FEE_LINE,
    VAT_FREE_CREDIT_LINE,
    VAT_FREE_SUPPLY_SUFFIX,
    CreditNote,
    Invoice,
    InvoiceLine,
    effective_tax_rate,
)
from domain.prepayment import PREPAYMENT_LINE
from domain.tax import split_gross


def _kept(line: InvoiceLine, credited: bool) -> bool:
    """A line notes never take back: a prepayment to account credit, the part of a supply
    VAT-free account credit paid and that credit's own line (time paid with credit is not
    paid back in money; together they take nothing off the invoice's total), and, when the
    payment's own value is account credit (`credited`), every line of what it paid for (all
    but the processing fee, which was not credited)."""
    return (
        line.description in (PREPAYMENT_LINE, VAT_FREE_CREDIT_LINE)
        or line.description.endswith(VAT_FREE_SUPPLY_SUFFIX)
        or (credited and line.description != FEE_LINE)
    )


def creditable_parts(invoice: Invoice, *, credited: bool = False) -> tuple[int, int]:
    """(net, VAT) that credit notes on the invoice may take back, all of them together: the
    invoice's own less its "Prepayment to account credit" line(s), net and VAT alike; an
    invoice without such a line (every invoice issued before prepayments were taxed) can
    take back all it charged.

    A prepayment is money the payer keeps as account credit, not a supply of this invoice:
    while unspent it is on the balance, and a note taking it back would pay it out a second
    time (the credit stays spendable). Notes never take it back, whatever became of the
    credit since, so the cap reads nothing but the invoice and stays exact under its lock:
    - credit still on the balance, or back on it (`released` by a quote that lapsed
      unpaid): it is the customer's to spend or to have refunded as credit;
    - credit spent: it paid a later renewal or upgrade, whose invoice's "Account credit
      applied" line took its value and VAT off that invoice's own; like any time paid
      with credit, that time is not paid back in money (its invoice charged nothing for
      it), and a refund of it to credit gives the credit back;
    - credit an admin takes off the balance (an adjustment) to pay it out by hand: that
      payout is corrected outside these notes, which never reach the prepayment.

    `credited`: the payment's own value was booked as account credit (its ledger entry,
    read by the issuer under the invoice's lock: `app.billing.invoicing.lock_for_notes`).
    At booking its invoice bills a prepayment instead of the service, which the rule above
    leaves out already; after it was issued (a Purchase or Renewal that completed while its
    VM was being deleted, credited when no room was left to bring it back:
    `app.billing.overtaken`) the invoice still shows the service ("Renewal: …", its
    supply period, any "Account credit applied"), immutable, though the credit is its net
    and the VAT on it was charged on top: that whole part, net and VAT, is a prepayment in
    fact, and notes leave it out too. Only an untaxed processing fee, never credited, is
    left for them."""
    kept = [line for line in invoice.document.lines if _kept(line, credited)]
    if not kept:
        return invoice.net, invoice.tax
    return (
        invoice.net - sum(line.net for line in kept),
        invoice.tax - sum(line.tax for line in kept),
    )


def service_left(
    invoice: Invoice, parts: Iterable[tuple[int, int]], *, credited: bool = False
) -> tuple[int, int]:
    """(net, VAT) of the invoice's service that its notes and refunds to credit (`parts`)
    have not taken back: what notes may take back (`creditable_parts`) less its untaxed
    processing fee. Notes are split at the service's rate (`new_note_parts`), so they take
    back the service with its VAT first; only their net beyond the service's is the fee's.
    A refund (to credit, by hand) gives back time, never the fee (r24 F1)."""
    net, tax = creditable_parts(invoice, credited=credited)
    net -= sum(line.net for line in invoice.document.lines if line.description == FEE_LINE)
    taken_net = taken_tax = 0
    for part_net, part_tax in parts:
        taken_net, taken_tax = taken_net + part_net, taken_tax + part_tax
    return max(0, net - taken_net), max(0, tax - taken_tax)


def credit_room(invoice: Invoice, issued: Iterable[CreditNote], *, credited: bool = False) -> int:
    """What credit notes on the invoice can still take back (gross, never below 0): its
    `creditable_parts` less the notes already issued on it (`issued`, and whether its
    payment's value is account credit, `credited`, both read under the invoice's row lock
    by every issuer)."""
    net, tax = creditable_parts(invoice, credited=credited)
    return max(0, net + tax - sum(note.amount for note in issued))


def invoice_vat_rate(invoice: Invoice, *, credited: bool = False) -> Decimal:
    """The rate a credit note of the invoice is split at: that of its taxed line with the
    largest net (the service line; an "Account credit applied" line is negative at the same
    rate, the processing fee line is untaxed), the lines notes never take back left out
    (`creditable_parts`: an untaxed upgrade's taxed prepayment would otherwise put VAT in
    its notes; with `credited`, the service is left out and the fee's notes bear none).
    Lines at two different rates are not split each at its own: the largest one's rate
    stands for the whole note. An invoice without a taxed line (none is issued so) is read
    off the net and tax notes may take back."""
    lines = invoice.document.lines
    taxed = [line for line in lines if line.tax and not _kept(line, credited)]
    if not taxed:
        return effective_tax_rate(*creditable_parts(invoice, credited=credited))
    return max(taxed, key=lambda line: line.net).tax_rate


def new_note_parts(
    amount: int,
    invoice: Invoice,
    issued: Iterable[tuple[int, int]],
    *,
    credited: bool = False,
    net: int | None = None,
) -> tuple[int, int]:
    """(net, tax) of a new credit note of gross `amount` on `invoice`, given the (net, tax)
    of the notes already issued on it (their sum plus `amount` is at most what notes may
    take back: `creditable_parts`, the invoice less its prepayment lines, and less its
    service when the payment's value is account credit, `credited`).

    - an invoice that charged no tax (reverse charge included) on what notes take back: all
      net;
    - a note that brings the notes to what they may take back takes the rest of its net and
      tax, so all notes together take back exactly the invoice's supplies;
    - otherwise the gross split at the invoice's rate (`invoice_vat_rate`, net rounded half
      up), or, when the caller knows the net the note takes back (`net`, 0 ≤ net ≤ amount:
      a refund's net, its gross that net plus `tax_on` it), that net and the rest as tax, so
      the note takes back no more VAT than was charged on that net (113 + 25 at 23 % is not
      re-split as 112 + 26); then capped so the notes never take back more tax (or net)
      than the invoice charged on them: the excess moves to the other part.

    The caps alone would end the last note on the rest too (its gross is exactly what is
    left); the second case says so outright, as the first says what a 0 % split gives.
    """
    notes_net = notes_tax = 0
    for issued_net, issued_tax in issued:
        notes_net, notes_tax = notes_net + issued_net, notes_tax + issued_tax
    own_net, own_tax = creditable_parts(invoice, credited=credited)
    if own_tax == 0:
        return amount, 0
    if notes_net + notes_tax + amount == own_net + own_tax:
        return own_net - notes_net, own_tax - notes_tax
    if net is None:
        net, tax = split_gross(amount, invoice_vat_rate(invoice, credited=credited))
    elif not 0 <= net <= amount:
        raise ValueError(f"a note of {amount} cannot take back a net of {net}")
    else:
        tax = amount - net
    tax_room, net_room = max(0, own_tax - notes_tax), max(0, own_net - notes_net)
    if tax > tax_room:
        net, tax = net + tax - tax_room, tax_room
    if net > net_room:
        net, tax = net_room, tax + net - net_room
    return net, tax


def issued_parts(
    invoice: Invoice, notes: Iterable[CreditNote], *, credited: bool = False
) -> list[tuple[int, int]]:
    """The (net, tax) of the invoice's notes, oldest first, as `new_note_parts` needs them: a
    note's own, and for an old note without them the split this rule gives it in its place
    (what it would have stored), so a later note still ends on the invoice's exact parts."""
    parts: list[tuple[int, int]] = []
    for note in notes:
        if note.net is not None and note.tax is not None:
            parts.append((note.net, note.tax))
        else:
            parts.append(new_note_parts(note.amount, invoice, parts, credited=credited))
    return parts
