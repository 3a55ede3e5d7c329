"""The credit notes of a refund by hand: its value taken back from the invoices of the time cut."""

from __future__ import annotations

from datetime import datetime

import attrs

from app.billing.invoicing import NoteTarget, add_credit_note, lock_for_notes
from domain.credit_note import invoice_vat_rate, issued_parts, new_note_parts
from domain.invoice import CreditNote
from domain.money import Money
from domain.tax import tax_on
from ports.storage import UnitOfWork


@attrs.frozen(kw_only=True)
class RefundNotes:
    """The notes issued for a refund (newest invoice first), their gross total in the
    refund's list currency (`total`: what is paid back), and the part of the refunded net
    value no invoice could take back (`uncovered`, same currency: not paid back), and whether
    the subscription has any invoice at all (`invoiced`: False only for one whose time was
    all paid before invoices were issued, as an adopted LNVPS database's VM not renewed
    since; time added free after an invoiced period is not paid back, so an admin cannot
    extend for free and then have that time refunded)."""

    notes: tuple[CreditNote, ...]
    total: Money
    uncovered: int
    invoiced: bool


@attrs.frozen
class _Planned:
    """A note to issue: its gross, and the net it takes back when not capped (None: the
    capped note is the invoice's last, which takes the rest of its net and VAT)."""

    target: NoteTarget
    amount: int
    net: int | None


def _take(target: NoteTarget, net: int) -> tuple[int, int, bool]:
    """(gross of the note, net it covers, whether capped) of taking back `net` from
    `target`'s invoice: the net plus the VAT the invoice charged on it (`tax_on` at the
    invoice's rate, 0 on a reverse charge or untaxed invoice), and the note records that
    net and VAT (not a re-split of the gross, which may take back a cent more VAT than
    was charged on the net); capped by what the invoice can still take back
    (`NoteTarget.room`: its total less any prepayment line and its notes so far), a note
    is the invoice's last and covers the net its own split gives it (the rest of the
    invoice's net).

    An invoice whose payment's value was booked as account credit (`credited`: its VM
    could not be brought back after it was paid) takes back nothing: the time it shows
    was taken back when it was credited, so none of it is paid back in money (the credit
    is the customer's), and its processing fee is not time either."""
    invoice, issued, room = target.invoice, target.issued, target.room
    if target.credited or room <= 0:
        return 0, 0, False
    gross = net + tax_on(net, invoice_vat_rate(invoice))
    if gross <= room:
        return gross, net, False
    covered, _ = new_note_parts(room, invoice, issued_parts(invoice, issued))
    return room, min(net, covered), True


async def credit_refund(
    uow: UnitOfWork,
    subscription_id: int,
    *,
    value: Money,
    start: datetime,
    reason: str,
    now: datetime,
) -> RefundNotes:
    """Issue the credit notes of a refund of `value` (net, the unused time from `start` at
    the price in force) of the subscription's time, in the caller's transaction, which holds
    the subscription's lock (so a refund and its notes commit together, once).

    The paid invoices are taken newest first (`of_subscription`: issue time, then id, so of
    two payments booked at the same instant the invoice issued last comes first): each one
    whose supply period ends after `start` and that is in `value`'s currency takes back what
    is left of the value plus its VAT, capped by what it can still take back, until the
    value is covered; the walk stops at the first invoice whose supply ended by `start` (the
    time bought before it is used). An invoice without a supply period bought no time and
    one in another currency cannot be matched without a rate: both are passed over, and so
    is one whose payment's value was booked as account credit after it was issued (`_take`:
    its time was taken back then, its value is the customer's credit). What no invoice
    takes back (time an admin added free, a price raised since the payment, time paid
    before invoices were issued, time whose payment became credit) is `uncovered`: no note,
    nothing paid back for it.

    Every invoice is locked (`lock_for_notes`: its notes and whether its payment was
    credited read after it; on MariaDB the notes by a locking read, the credit as committed
    before the subscription's lock this transaction holds) before any note is numbered, so
    the series' counter lock comes after all invoice locks, the order the admin's credit
    note takes them in (no deadlock)."""
    left = value.amount
    planned: list[_Planned] = []
    invoices = await uow.invoices.of_subscription(subscription_id)
    for found in invoices:
        if left <= 0:
            break
        doc = found.document
        if doc.supply_to is None or found.currency != value.currency.value:
            continue
        if doc.supply_to <= start:
            break
        target = await lock_for_notes(uow, found.id)
        assert target is not None  # invoices are never deleted
        gross, covered, capped = _take(target, left)
        if gross > 0:
            planned.append(_Planned(target, gross, None if capped else covered))
            left -= covered
    notes = [
        await add_credit_note(uow, p.target, amount=p.amount, reason=reason, now=now, net=p.net)
        for p in planned
    ]
    total = sum(note.amount for note in notes)
    return RefundNotes(
        notes=tuple(notes),
        total=Money(value.currency, total),
        uncovered=left,
        invoiced=bool(invoices),
    )
