"""Issue an invoice inside the booking transaction, and credit notes against issued invoices."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from app.billing.errors import IdempotencyKeyReused, NotFound
from app.billing.refunded_credit import refunded_to_credit
from domain.account_credit import MAX_REFERENCE, CreditReason
from domain.credit import CreditMode
from domain.credit_note import (
    credit_room,
    creditable_parts,
    invoice_vat_rate,
    issued_parts,
    new_note_parts,
)
from domain.errors import InvalidInput
from domain.invoice import (
    CreditNote,
    Invoice,
    credit_note_series,
    document_number,
    invoice_series,
)
from domain.invoice_content import build_content
from domain.own_account import CREDIT_NOTE, refuse_own
from domain.tax import tax_on
from ports.clock import Clock
from ports.storage import UnitOfWork, UnitOfWorkFactory

if TYPE_CHECKING:
    from app.billing.completion import CompletedPayment


class InvoiceNotFound(NotFound):
    """No invoice with that id (404)."""


async def issue_invoice(uow: UnitOfWork, done: CompletedPayment) -> Invoice:
    """The booked payment's invoice, numbered in the seller's series of the year of issue.

    Runs in the booking transaction (after the `is_paid` flip, which lets exactly one
    completion through): the counter row stays locked until that transaction commits, so a
    completion that dies gives its number back and concurrent ones queue — gapless. Seller and
    buyer are read here and copied into the invoice: later edits of either never change it.
    An invoice already issued for the payment is returned as it is.

    Issued at the payment's time (`paid_at`, the clock read when its completion began), in
    that year's series, but never before the series' previous number: a completion that took
    the counter lock after a later-started one (a race) is dated as that one, so numbers
    and dates run in the same order (`_dated_after_previous`).
    """
    payment, sub = done.payment, done.subscription
    existing = await uow.invoices.get_by_payment(payment.id)
    if existing is not None:
        return existing
    paid_at = payment.paid_at
    assert paid_at is not None, "only a booked payment is invoiced"
    seller = await uow.companies.get(sub.company_id)
    buyer = await uow.users.get(payment.user_id)
    if seller is None or buyer is None:  # impossible with the foreign keys
        raise LookupError(f"payment {payment.id.hex()} has no company or user")
    series = invoice_series(paid_at)
    seq = await uow.invoices.next_seq(seller.id, series)
    issued_at = await _dated_after_previous(uow, seller.id, series, seq, paid_at)
    content = build_content(
        payment=payment,
        subscription=sub,
        items=done.line_items,
        seller=seller,
        buyer=buyer,
        issued_at=issued_at,
        supply=_supply(done, paid_at),
        kept_as_credit=_kept_as_credit(done),
    )
    return await uow.invoices.add(
        Invoice(
            id=0,
            company_id=seller.id,
            series=series,
            seq=seq,
            number=document_number(series, seq),
            payment_id=payment.id,
            user_id=payment.user_id,
            issued_at=issued_at,
            currency=content.currency,
            net=content.net,
            tax=content.tax,
            total=content.total,
            content=content.to_json(),
        )
    )


async def _dated_after_previous(
    uow: UnitOfWork, company_id: int, series: str, seq: int, paid_at: datetime
) -> datetime:
    """`paid_at`, or the issue time of number `seq - 1` if that is later (read under the
    counter lock `next_seq` holds, so it is committed). Stays in the series' year: every
    date in the series is."""
    previous = None if seq <= 1 else await uow.invoices.issued_at_of(company_id, series, seq - 1)
    return paid_at if previous is None or previous <= paid_at else previous


def _kept_as_credit(done: CompletedPayment) -> bool:
    """A payment booked without supplying what it paid for, its whole value booked as
    account credit (`CreditMode.UNRESTORABLE`): an Upgrade not applied, or a Purchase or
    Renewal whose deleted VM (or lapsed order) cannot be provided again. Its invoice bills a
    prepayment to account credit, not the service (nothing was supplied; credit notes never
    take that money back, it stays on the balance). Such a payment is credited whole or
    not at all: one whose value could not be booked (`credited` 0) keeps its service line,
    for an operator to settle, by a credit note if need be."""
    credit = done.credit
    return credit is not None and credit.mode is CreditMode.UNRESTORABLE and done.credited > 0


def _supply(done: CompletedPayment, now: datetime) -> tuple[datetime, datetime] | None:
    """The service period bought: the time credited, or for an upgrade the rest of the term."""
    if done.credit is not None:
        if done.credit.new_expiry > done.credit.base:
            return done.credit.base, done.credit.new_expiry
        return None
    expires = done.subscription.expires
    return (now, expires) if expires is not None and expires > now else None


@attrs.frozen
class NoteTarget:
    """An invoice held for credit notes (`lock_for_notes`): the invoice under its row lock,
    its notes so far (oldest first), whether its payment's own value is account credit
    (`credited`) and the net of its time refunds to credit gave back as credit
    (`refunded`), all read after the lock was granted."""

    invoice: Invoice
    issued: list[CreditNote]
    credited: bool
    refunded: int = 0

    @property
    def refunded_tax(self) -> int:
        """The VAT the invoice charged on the `refunded` net (`tax_on` at its rate)."""
        rate = invoice_vat_rate(self.invoice, credited=self.credited)
        return tax_on(self.refunded, rate) if self.refunded > 0 else 0

    @property
    def parts(self) -> list[tuple[int, int]]:
        """(net, VAT) already taken back of the invoice, oldest first, as `new_note_parts`
        needs them: its notes' (`issued_parts`), then what refunds to credit gave back and
        the VAT charged on it (that time's money is the customer's credit now)."""
        parts = issued_parts(self.invoice, self.issued, credited=self.credited)
        if self.refunded > 0:
            parts.append((self.refunded, self.refunded_tax))
        return parts

    @property
    def room(self) -> int:
        """What notes on it can still take back (`credit_room`), less what refunds to
        credit gave back of it and the VAT on that: a note for that time would give it
        back twice (as credit and as money)."""
        room = credit_room(self.invoice, self.issued, credited=self.credited)
        return max(0, room - self.refunded - self.refunded_tax)


async def lock_for_notes(uow: UnitOfWork, invoice_id: int) -> NoteTarget | None:
    """The invoice's row lock, then what caps its notes (every issuer of a credit note reads
    them so, before any note is numbered: the series' counter lock comes after): the notes
    issued on it and whether its payment's own value was booked as account credit (its
    ledger entry, `credited_as_account_credit`). None for no such invoice.

    That credit is booked at the payment's booking (its invoice then bills a prepayment)
    or later, by `app.billing.overtaken.credit_overtaken`, which takes this same lock
    before booking it: either it committed first and is read here (on MariaDB this
    transaction's first plain read comes after the lock, or, for a refund, after the
    subscription's lock, which the crediting holds too), or the notes it finds keep it
    from booking the credit.

    What refunds to credit gave back of the invoice (`refunded_to_credit`) is read after
    the lock too: a refund to credit locks the invoices it values (after the subscription's
    lock, before the balance's) and records what it gave back of each before it commits.
    """
    invoice = await uow.invoices.get_for_update(invoice_id)
    if invoice is None:
        return None
    issued = await uow.invoices.credit_notes_of(invoice.id)
    credited = await credited_as_account_credit(uow, invoice.payment_id)
    refunded = await refunded_to_credit(uow, invoice)
    return NoteTarget(invoice=invoice, issued=issued, credited=credited, refunded=refunded)


async def credited_as_account_credit(uow: UnitOfWork, payment_id: bytes) -> bool:
    """Whether the payment's own value was booked as account credit: a positive OVERPAYMENT
    entry under its bare id (`app.billing.credit_overpayment.credit_unrestorable`; an
    excess or a settlement after an admin's completion is booked under a suffixed
    reference and is money beyond the invoice, so it does not count)."""
    entries = await uow.credit_ledger.list_by_reference(payment_id.hex())
    return any(
        entry.reason is CreditReason.OVERPAYMENT
        and entry.payment_id == payment_id
        and entry.amount > 0
        for entry in entries
    )


async def issue_credit_note(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    invoice_id: int,
    amount: int,
    reason: str,
) -> CreditNote:
    """A refund or correction of an issued invoice: a new document in the company's credit
    note series; the invoice itself is never touched. The notes of one invoice never add up
    to more than it can take back (`credit_room`: its total less any prepayment to account
    credit, money that stays on the balance, and less the service whose value its payment
    booked as account credit after the invoice was issued): the check runs under the
    invoice's own row lock (`lock_for_notes`), so two admins cannot both pass, even when
    their notes fall in two series (31 Dec and 1 Jan), nor can the crediting of its
    payment slip between. The note's net and VAT are fixed there too, from the notes
    already issued (`new_note_parts`)."""
    issued = await _issue_note(uow_factory, clock, invoice_id, amount, reason, None, None)
    return issued.note


async def issue_admin_credit_note(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    invoice_id: int,
    amount: int,
    reason: str,
    admin_id: int,
    reference: str | None = None,
) -> IssuedNote:
    """`issue_credit_note` as the admin API asks it: by the admin `admin_id`, optionally
    with a request `reference`. Nobody issues a note on their own invoice (money back to
    themselves): refused (403, nothing issued), judged under the invoice's lock against
    `admin_id` (who asks: required, so no caller skips the check).

    A reference (an idempotency key, a ticket number) makes a repeated request issue
    nothing: the note issued with it on this invoice is answered again (`replayed`). A
    replay must repeat the request: the reference with another amount or reason is refused
    (409, as a credit adjustment's), nothing issued. It is read under the invoice's lock,
    so two requests at once issue one note. Without one, each request issues a note."""
    return await _issue_note(uow_factory, clock, invoice_id, amount, reason, reference, admin_id)


async def _issue_note(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    invoice_id: int,
    amount: int,
    reason: str,
    reference: str | None,
    admin_id: int | None,
) -> IssuedNote:
    """The note issued (`issue_admin_credit_note`), refused to `admin_id` on their own
    invoice; None only for `issue_credit_note`, which no admin route calls."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("A credit note needs a reason")
    if amount <= 0:
        raise InvalidInput("A credit note's amount must be a positive integer")
    if reference is not None and not 0 < len(reference) <= MAX_REFERENCE:
        raise InvalidInput(f"reference must be 1..{MAX_REFERENCE} characters")
    async with uow_factory() as uow:
        # the invoice's lock first: what is read after it was granted is what other issuers
        # committed (MariaDB takes its read snapshot at the first plain read, not here); then
        # the series' counter lock (the order every issuer of a credit note takes them in)
        target = await lock_for_notes(uow, invoice_id)
        if target is None:
            raise InvoiceNotFound("Invoice not found")
        if admin_id is not None:
            refuse_own(admin_id, {target.invoice.user_id}, CREDIT_NOTE)
        # the clock read once, after the lock: a note that waited for it is not dated
        # before a note numbered while it waited
        now = clock.now()
        earlier = _issued_with(target, reference, amount, reason)
        if earlier is not None:
            return IssuedNote(earlier, replayed=True)
        if amount > target.room:
            raise InvalidInput(_over_cap(target))
        note = await add_credit_note(
            uow, target, amount=amount, reason=reason, now=now, reference=reference
        )
        await uow.commit()
    return IssuedNote(note)


@attrs.frozen
class IssuedNote:
    """The note an admin's request issued, or the one an earlier request with the same
    reference issued (`replayed`: nothing issued now)."""

    note: CreditNote
    replayed: bool = False


def _issued_with(
    target: NoteTarget, reference: str | None, amount: int, reason: str
) -> CreditNote | None:
    """The note already issued on the invoice with `reference`, when the request repeats it
    (same amount and reason); `IdempotencyKeyReused` (409) when it does not. None without a
    reference or such a note."""
    if reference is None:
        return None
    earlier = next((n for n in target.issued if n.reference == reference), None)
    if earlier is None:
        return None
    if (earlier.amount, earlier.reason) != (amount, reason[:255]):
        raise IdempotencyKeyReused(
            f"Reference {reference!r} was already used for a credit note of "
            f"{earlier.amount} with reason {earlier.reason!r} on this invoice "
            f"({earlier.number}); use another reference for another note"
        )
    return earlier


def _over_cap(target: NoteTarget) -> str:
    """Why a note is refused: the invoice total, or for an invoice with a prepayment line,
    or whose payment's value is account credit, what notes may take back of it
    (`creditable_parts`), and how much is credited."""
    invoice, issued = target.invoice, target.issued
    credited = sum(n.amount for n in issued)
    creditable = sum(creditable_parts(invoice, credited=target.credited))
    if target.refunded > 0:
        given = target.refunded + target.refunded_tax
        return (
            f"Credit notes would exceed what the invoice can take back: a refund to credit "
            f"gave back {given} of its {invoice.total} (its unused time's {target.refunded} "
            f"and the VAT on it) as account credit, and {credited} is already credited; "
            f"{target.room} is left"
        )
    if creditable == invoice.total:
        return (
            f"Credit notes would exceed the invoice total ({credited} of "
            f"{invoice.total} already credited)"
        )
    return (
        f"Credit notes would exceed what the invoice can take back: its total, "
        f"{invoice.total}, less its prepayment to account credit, which stays on the "
        f"account{_ALL_CREDITED if target.credited else ''} ({credited} of {creditable} "
        "already credited)"
    )


#: what a refusal adds for an invoice whose payment's own value is account credit
_ALL_CREDITED = (
    ": its payment's value was booked as account credit, so only what was not credited "
    "(a processing fee) can be taken back"
)


async def add_credit_note(
    uow: UnitOfWork,
    target: NoteTarget,
    *,
    amount: int,
    reason: str,
    now: datetime,
    net: int | None = None,
    reference: str | None = None,
) -> CreditNote:
    """Number and store a credit note of gross `amount` on `target`'s invoice, its net and
    VAT fixed from the invoice's notes so far (`issued`, oldest first: `new_note_parts`),
    and from the `net` it takes back when the caller computed it (a refund's).

    The caller holds the invoice's row lock and read the rest after it (`lock_for_notes`),
    and checked that `amount` is at most what the invoice can still take back
    (`NoteTarget.room`); the series' counter lock is taken here, after the invoice's (the
    order every issuer takes them in).

    Dated `now`, in that year's series, but never before the series' previous note
    (`_dated_after_previous`, as invoices are): an issuer that read its clock before it
    waited for a lock (an invoice's, the counter's) and so numbers after a later one is
    dated as that one, so numbers and dates run in the same order."""
    invoice, credited = target.invoice, target.credited
    if not 0 < amount <= target.room:  # the caller's check, kept here too
        raise ValueError(f"a credit note of {amount} is over what invoice {invoice.id} can take")
    net, tax = new_note_parts(amount, invoice, target.parts, credited=credited, net=net)
    series = credit_note_series(now)
    seq = await uow.invoices.next_seq(invoice.company_id, series)
    issued_at = await _dated_after_previous(uow, invoice.company_id, series, seq, now)
    return await uow.invoices.add_credit_note(
        CreditNote(
            id=0,
            company_id=invoice.company_id,
            series=series,
            seq=seq,
            number=document_number(series, seq),
            invoice_id=invoice.id,
            issued_at=issued_at,
            currency=invoice.currency,
            amount=amount,
            reason=reason[:255],
            net=net,
            tax=tax,
            reference=reference,
        )
    )
