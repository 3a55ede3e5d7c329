"""The credit notes of a refund by hand: its value taken back from the invoices of the time cut."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import attrs

from app.billing.invoicing import NoteTarget, add_credit_note, lock_for_notes
from domain.credit_note import invoice_vat_rate, new_note_parts, service_left
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


def _take(target: NoteTarget, net: int) -> tuple[int, int, int | None]:
    """(gross of the note, net it covers, the net it records: None for the invoice's last
    note, which takes the rest of its net and VAT) of taking back `net` from
    `target`'s invoice: the net plus the VAT the invoice charged on it (`tax_on` at the
    invoice's rate, 0 on a reverse charge or untaxed invoice), and the note records that
    net and VAT (not a re-split of the gross, which may take back a cent more VAT than
    was charged on the net); capped by what the invoice can still take back
    (`NoteTarget.room`: its total less any prepayment line and its notes so far), a note
    is the invoice's last and covers the net its own split gives it (the rest of the
    invoice's net). The net and VAT are first capped by what is left of the invoice's
    service (`service_left`): a refund gives back time, never the processing fee, and an
    earlier note took the service back before the fee, as it was split (r24 F1).

    An invoice whose payment's value was booked as account credit (`credited`: its VM
    could not be brought back after it was paid) takes back nothing: the time it shows
    was taken back when it was credited, so none of it is paid back in money (the credit
    is the customer's), and its processing fee is not time either."""
    invoice, room = target.invoice, target.room
    if target.credited or room <= 0:
        return 0, 0, None
    net_left, tax_left = service_left(invoice, target.parts)
    take = min(net, net_left)
    if take <= 0:
        return 0, 0, None
    # the service's last net takes its VAT left with it (the invoice's notes end on its VAT)
    tax = tax_left if take == net_left else min(tax_on(take, invoice_vat_rate(invoice)), tax_left)
    gross = take + tax
    if gross <= room:
        return gross, take, take
    covered, _ = new_note_parts(room, invoice, target.parts)
    return room, min(take, covered), None


async def credit_refund(
    uow: UnitOfWork,
    subscription_id: int,
    *,
    value: Money,
    shares: Mapping[str, int],
    reason: str,
    now: datetime,
) -> RefundNotes:
    """Issue the credit notes of a refund of `value` (net, the unused time at the price in
    force, never more than was paid for it) of the subscription's time, in the caller's
    transaction, which holds the subscription's lock (so a refund and its notes commit
    together, once).

    `shares` says which payment's time each part of the value is (`Unused.split`, by
    payment id in hex, adding up to `value`): each paid invoice gives back its own
    payment's part and nothing else, its net plus the VAT it charged on it, capped by what
    it can still take back (`_take`). What an invoice cannot take back stays uncovered and
    is never passed on to another invoice: time bought with account credit (its invoice
    charged nothing for it, total 0: a refund to credit gives that credit back, money is
    never paid for it), time an earlier note or refund to credit took back, time whose
    payment became account credit after its invoice was issued (`credited`), and an
    invoice in another currency than `value`'s (no rate to match them). Time no invoice
    covers at all (time paid before invoices were issued) is uncovered too; time added
    free is worth nothing and in no share. Passing a part on to an older invoice would pay
    back in money time already used there, or turn credit (a goodwill adjustment, say)
    into money. `uncovered` is `value` less the net the notes take back: no note, nothing
    paid back for it.

    Every invoice is locked (`lock_for_notes`: its notes, its refunds to credit and whether
    its payment was credited read after it; on MariaDB the notes by a locking read, the
    rest as committed before the subscription's lock this transaction holds) before any
    note is numbered, newest first (issue time, then id), so the series' counter lock comes
    after all invoice locks, the order the admin's credit note takes them in (no
    deadlock)."""
    covered_total = 0
    planned: list[_Planned] = []
    invoices = await uow.invoices.of_subscription(subscription_id)
    for found in invoices:
        own = shares.get(found.payment_id.hex(), 0)
        if own <= 0 or found.currency != value.currency.value:
            continue  # none of the time is its payment's, or no rate to match: uncovered
        target = await lock_for_notes(uow, found.id)
        assert target is not None  # invoices are never deleted
        gross, covered, note_net = _take(target, own)
        if gross > 0:
            planned.append(_Planned(target, gross, note_net))
            covered_total += covered
    notes = [
        await add_credit_note(uow, p.target, amount=p.amount, reason=reason, now=now, net=p.net)
        for p in planned
    ]
    total = sum(note.amount for note in notes)
    return RefundNotes(
        notes=tuple(notes),
        total=Money(value.currency, total),
        uncovered=value.amount - covered_total,
        invoiced=bool(invoices),
    )
