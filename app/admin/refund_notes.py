"""The credit notes of a refund by hand: its value taken back from the invoices of the time cut."""

from __future__ import annotations

from datetime import datetime

import attrs

from app.billing.invoicing import add_credit_note
from domain.credit_note import credit_room, invoice_vat_rate, issued_parts, new_note_parts
from domain.invoice import CreditNote, Invoice
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
    invoice: Invoice
    issued: list[CreditNote]
    amount: int


def _take(invoice: Invoice, issued: list[CreditNote], net: int) -> tuple[int, int]:
    """(gross of the note, net it covers) of taking back `net` from `invoice`: the net plus
    the VAT the invoice charged on it (`tax_on` at the invoice's rate, 0 on a reverse charge
    or untaxed invoice), capped by what the invoice can still take back (`credit_room`: its
    total less any prepayment line and its notes so far); a capped note covers the net its
    own split gives it."""
    room = credit_room(invoice, issued)
    if room <= 0:
        return 0, 0
    gross = net + tax_on(net, invoice_vat_rate(invoice))
    if gross <= room:
        return gross, net
    covered, _ = new_note_parts(room, invoice, issued_parts(invoice, issued))
    return room, min(net, covered)


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
    one in another currency cannot be matched without a rate: both are passed over. What no
    invoice takes back (time an admin added free, a price raised since the payment, time
    paid before invoices were issued) is `uncovered`: no note, nothing paid back for it.

    Every invoice is locked (`get_for_update`, its notes read after it: on MariaDB a
    locking read) before any note is numbered, so the series' counter lock comes after all
    invoice locks, the order the admin's credit note takes them in (no deadlock)."""
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
        invoice = await uow.invoices.get_for_update(found.id)
        assert invoice is not None  # invoices are never deleted
        issued = await uow.invoices.credit_notes_of(invoice.id)
        gross, covered = _take(invoice, issued, left)
        if gross > 0:
            planned.append(_Planned(invoice, issued, gross))
            left -= covered
    notes = [
        await add_credit_note(uow, p.invoice, p.issued, amount=p.amount, reason=reason, now=now)
        for p in planned
    ]
    total = sum(note.amount for note in notes)
    return RefundNotes(
        notes=tuple(notes),
        total=Money(value.currency, total),
        uncovered=left,
        invoiced=bool(invoices),
    )
