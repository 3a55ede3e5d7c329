"""Admin refund of a VM's unused paid time by hand: recorded once, the time cut, admins told."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import attrs

from app.admin.expiry_moved import end_quotes_of_old_expiry
from app.admin.refund_notes import RefundNotes, credit_refund
from app.admin.refund_record import (
    MANUAL,
    NothingToRefund,
    already_refunded,
    notified_event,
    notified_job,
    refund_event,
    refund_figure,
    refund_of,
    unnotified_refund,
)
from app.admin.unused_worth import NO_PAID_TIME
from app.admin.vm_removal import refund_start, refund_value
from app.admin.vms import locked_subscription_of, require_live
from app.billing.catalogue import subscription_of
from app.billing.price_in_force import cancel_quietly
from app.billing.rails import PaymentRails
from app.lifecycle_codes import end_without_renewal
from domain.enums import PaymentMethod
from domain.exchange import PASSTHROUGH_RATE, ChargedAmount, charge_amount
from domain.model import SubscriptionPayment, VmHistory
from domain.money import Money
from ports.clock import Clock
from ports.jobs import SendAdminNotification
from ports.queue import WorkQueue
from ports.rates import RateStore
from ports.storage import UnitOfWorkFactory

#: the refusal for a deleted VM, the refund figure's (R10.1)
_DELETED = "Can't calculate for deleted VM"


#: the refund record's key of the uncovered value as a number (smallest units), beside the
#: figure under "uncovered"; records written before it have the figure alone (`_uncovered`)
UNCOVERED_AMOUNT = "uncovered_amount"


def _payout(notes: RefundNotes, value: Money, paid: ChargedAmount) -> dict[str, object]:
    """The record's fields of what is paid back: the credit notes (their numbers and gross
    total), the unused time's value before tax, the part of it no invoice took back, and
    the rate the notes' total was converted at for the method."""
    uncovered = notes.uncovered if notes.notes else 0
    return {
        "value": refund_figure(value),
        "credit_notes": [note.number for note in notes.notes],
        "credited": refund_figure(notes.total),
        "uncovered": refund_figure(Money(value.currency, uncovered)),
        UNCOVERED_AMOUNT: uncovered,
        "rate": str(paid.rate),
    }


def _uncovered(record: dict[str, object]) -> int:
    """The record's uncovered value (smallest units): its `UNCOVERED_AMOUNT`, or, in a record
    written before that was stored, the number its "uncovered" figure starts with
    (`refund_figure`: "<amount> <code> (smallest units)")."""
    amount = record.get(UNCOVERED_AMOUNT)
    if isinstance(amount, int):
        return amount
    return int(str(record.get("uncovered", "0")).split()[0])


def _payout_lines(record: dict[str, object]) -> list[str]:
    """What the notice says of the credit notes behind the amount (every record of a refund
    by hand lists them, none for time no invoice covers)."""
    numbers = cast(list[str], record["credit_notes"])
    if not numbers:
        return [
            f"No invoice covers this time (paid before invoices were issued, as on an adopted "
            f"LNVPS database): no credit note was issued, and the amount is "
            f"the unused time's value before tax ({record.get('value')})."
        ]
    lines = [
        f"The amount includes VAT: it is the total of credit notes {', '.join(numbers)} "
        f"({record.get('credited')}), issued against the invoices that paid for the time; "
        f"the unused time's value before tax is {record.get('value')}."
    ]
    if record.get("rate") != str(PASSTHROUGH_RATE):
        lines.append(f"The credit notes' total was converted at {record.get('rate')} per BTC.")
    if _uncovered(record) != 0:
        lines.append(
            f"Capped: {record.get('uncovered')} of that value (before tax) is covered by no "
            "paid invoice (time paid with account credit, which only a refund to credit "
            "gives back; an earlier credit note took it back; or it was paid before "
            "invoices were issued) and is not included: do not pay it."
        )
    return lines


def _notice(entry: VmHistory, *, again: bool) -> SendAdminNotification:
    """The admins' "pay it by hand" notice of the refund `entry` records, from what it stored
    (`again`: a repeat, after the first could not be confirmed queued)."""
    record = refund_of(entry)
    meta = entry.metadata
    assert record is not None and isinstance(meta, dict)
    method = PaymentMethod.parse(str(record["method"]))
    lines = [
        f"Refund requested for VM #{entry.vm_id} by admin user #{meta.get('admin_user_id')}: "
        f"{record['amount']} by {method.display_name}, for {record.get('seconds')} s of "
        "unused time.",
        *_payout_lines(record),
        "It is not paid automatically: pay it by hand. The paid time was cut to the refund's "
        "start; the refund is recorded in the VM's history.",
        f"Refund reference: {record['reference']} (pay each reference once).",
    ]
    if again:
        lines.append(
            "This notice is sent again: the first one could not be confirmed as sent. If you "
            "have paid this reference already, do not pay it again."
        )
    if record.get("invoice"):
        lines.append(f"Invoice to pay: {record['invoice']}")
    if meta.get("reason"):
        lines.append(f"Reason: {meta['reason']}")
    return SendAdminNotification(
        title=f"[VM{entry.vm_id}] Refund requested", message="\n".join(lines)
    )


async def refund_by_hand(
    uow_factory: UnitOfWorkFactory,
    rates: RateStore,
    clock: Clock,
    queue: WorkQueue,
    *,
    vm_id: int,
    method: PaymentMethod,
    from_date: datetime | None,
    lightning_invoice: str | None,
    admin_id: int,
    reason: str | None,
    rails: PaymentRails | None = None,
) -> str:
    """Record a refund of the VM's unused time from `from_date` (default now, never
    earlier: 400) to its expiry, to be paid by hand, then tell the admins; the notice's job id.

    No money moves here: the reference's ProcessVmRefund job was never implemented (it
    always failed), and paying out automatically from an admin click is the kind of thing
    that must be done by a person. What makes it once-only is the same as for a refund to
    credit, in one transaction under the subscription's lock (taken first, as completion
    does): the subscription's expiry is cut to the refund's start, and a VM history entry
    records who refunded what (its reference, `refund_reference`, names the subscription,
    the last payment's period and the expiry, as a refund to credit's ledger entry does). A
    second refund of that time, by hand or to credit, then
    finds nothing left and the record that cut it: 409. Pending quotes fare as after a
    refund to credit: a renewal paid later extends from the cut expiry (or now), so it buys
    its own time; the upgrade quotes (priced to the old expiry) and any renewal invoice an
    automatic renewal claimed for the cut period are expired with the cut and cancelled at
    `rails` after its commit (`end_quotes_of_old_expiry`; one paid anyway is credited).
    The refund ends the service at its start: the worker does not auto-renew the cut
    period nor send its expiring-soon notice (`end_without_renewal`), but stops the VM then
    and deletes it after the grace as for any expiry.

    Money paid back is documented by credit notes, issued in the same transaction (so once,
    with the refund, and a crash leaves neither): `credit_refund` takes the unused time's
    value back from the subscription's paid invoices of that time, newest first. The value
    (`refund_value`, the GET figure) is the one a refund to credit books (`unused_worth`:
    the whole subscription's price in force, the VM's and every other item's such as an IP
    range, whose time the cut takes back too, in the subscription's currency, never more
    than was paid for the time, nothing for days added free), a price
    before tax, but the customer paid it plus VAT, so what the admins are told to pay is
    gross: the credit notes' total (each the net plus the VAT its invoice charged on it),
    converted for the method as a charge would be.
    The notice names the notes, and when the invoices cannot take back the whole value
    (time paid with account credit, an earlier credit note took part of it back) it says
    the rest is not paid: each invoice gives back its own payment's part alone
    (`refund.shares`, `credit_refund`). With nothing any
    invoice can take back the refund is refused (`NothingToRefund`) and nothing changes.

    The admins' notice is sent at least once, never lost: the record stores what it says
    (amount, method, seconds, the Lightning invoice, the reason) and the notice is queued
    after the commit, in a second small transaction under the subscription's lock that
    records it was queued (`notified_event`). When queueing (or that record) fails the
    admin gets an error and the refund stands; asking for the same refund again (the same
    start, or now for one from now) finds the record not yet notified and sends its notice
    again, from the stored details (the repeat's own method and invoice are not used: the
    refund is the recorded one), instead of 409. A notice may so be sent twice (say the
    queue took it but its answer or the record of it was lost): each carries the refund's
    reference and a repeat says it is one, so the admins pay each reference once. Once
    notified, a repeat is 409, and so is one that waited for the lock while the notice was
    queued. A repeat that came between the refund's commit and its notice's transaction
    cannot tell it from a lost notice: whichever of the two notice transactions takes the
    lock first queues the one notice, so when it is the repeat's, that notice says it is
    sent again and both requests answer 200 with its job id (the first request finds it
    queued); when it is the first request's, the repeat finds it sent: 409.
    """
    now = clock.now()
    start = refund_start(from_date, now, "refund_from_date")
    async with uow_factory() as uow:  # which subscription: read before its lock is taken
        found = await subscription_of(uow, require_live(await uow.vms.get(vm_id), _DELETED))
    table = await rates.table()  # outside the transaction: the rate store may be remote
    expired: list[SubscriptionPayment] = []
    async with uow_factory() as uow:
        # locked first: the reads below see what was committed before the lock
        sub, vm = await locked_subscription_of(uow, found.id, vm_id, _DELETED)
        recorded = None
        if sub.expires is not None and sub.expires <= start:
            # 409 when a refund cut it, unless a refund by hand whose notice is unconfirmed
            recorded = await unnotified_refund(uow, vm.id, sub.expires)
        again = recorded is not None
        if recorded is None:
            refund = await refund_value(uow, sub, vm, start, method=method, rates=table, now=now)
            if refund.amount.amount <= 0:
                raise NothingToRefund(NO_PAID_TIME)
            assert sub.expires is not None  # refund_value refuses a subscription without one
            note_reason = (
                f"Refund by hand of VM #{vm.id}'s unused time from {start.isoformat()} "
                f"({refund.reference})"
            )
            notes = await credit_refund(
                uow,
                sub.id,
                value=refund.value,
                shares=dict(refund.shares),
                reason=note_reason,
                now=now,
            )
            if notes.total.amount <= 0 and notes.invoiced:
                raise NothingToRefund(
                    "No paid invoice can take back the unused time (credited in full "
                    "already, or time added free): nothing can be paid back"
                )
            # a subscription without any invoice (its time paid before invoices were
            # issued, as an adopted LNVPS database's VM): its value is paid back as before
            # invoices existed, with no credit note (there is nothing to correct)
            paid = charge_amount(notes.total if notes.notes else refund.value, method, table, now)
            await uow.subscriptions.update(attrs.evolve(sub, expires=start))
            await end_without_renewal(uow, sub.id, start, now)  # the service ends then
            expired = await end_quotes_of_old_expiry(uow, sub, now)
            extra = {
                "method": method.api_name,
                "seconds": refund.seconds_remaining,
                "invoice": lightning_invoice,
                **_payout(notes, refund.value, paid),
            }
            recorded = await uow.vm_history.add(
                refund_event(
                    vm_id=vm.id,
                    kind=MANUAL,
                    reference=refund.reference,
                    admin_id=admin_id,
                    expires=sub.expires,
                    cut_to=start,
                    figure=refund_figure(paid.money),
                    now=now,
                    reason=reason,
                    extra=extra,
                )
            )
            await uow.commit()
    await cancel_quietly(rails, expired)
    return await _tell_admins(uow_factory, queue, clock, found.id, recorded, again=again)


async def _tell_admins(
    uow_factory: UnitOfWorkFactory,
    queue: WorkQueue,
    clock: Clock,
    sub_id: int,
    recorded: VmHistory,
    *,
    again: bool,
) -> str:
    """Queue the notice of the refund `recorded` and record that it was, under the
    subscription's lock, unless a racing request did already: then the refund's first
    request answers with that notice's job id, a repeat (`again`) is 409. A repeat that gets
    here first queues the one notice itself (saying it is sent again) and answers with it."""
    async with uow_factory() as uow:
        await uow.subscriptions.get_for_update(sub_id)
        sent = await notified_job(uow, recorded)
        if sent is not None:
            if again:
                raise already_refunded(recorded)
            return sent
        # queued under the lock, so racing repeats wait and then find it sent; the lock is
        # held for one queue call (bounded by the queue client's timeout)
        job_id = await queue.send(_notice(recorded, again=again))
        await uow.vm_history.add(notified_event(recorded, job_id=job_id, now=clock.now()))
        await uow.commit()
    return job_id
