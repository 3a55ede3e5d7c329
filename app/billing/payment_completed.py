"""Subscribers of `PaymentCompleted`: what follows a booked payment, after its commit.

Each subscriber reacts to the event on its own: the worker's jobs (spawn or start the paid
VMs, resize an upgraded one), the invoices expired with the booking cancelled at their own
provider (D13, D23), the admins told about a payment not credited as quoted (D23), the owner
told about a payment capped and its rest credited. A
subscriber that fails is logged and reported; it never undoes the payment, and the others
still run.

If the process dies after the commit and before (or while) the subscribers run, nothing
replays the event (a replayed settlement finds the payment paid and does nothing, D9). What
makes good each reaction instead:

- spawning: the worker's VM check (`app/worker/vmcheck.py`) spawns every paid, unexpired VM
  its host does not know (tests/unit/billing/test_payment_completed.py pins this);
- resizing: the VM's records are upgraded in the booking, so billing is right, and the VM is
  marked `resize_requested` in the same transaction; the worker's ProcessVmUpgrade clears the
  mark once the host has the size, and the VM check sends the job again (it is idempotent)
  for a mark older than `vmcheck.RESIZE_GRACE` (tests/contract/test_upgrade_resize.py);
- cancelling: the invoices are expired in storage already; one paid at its provider anyway
  is credited by value (D23), so a lost cancel costs nobody money;
- the admins' notice: the credit and why is stored in the payment's `metadata` (`credit`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal

import attrs

from app.billing.booked_records import formatted
from app.billing.ip_allocation import WHY_PREFIX
from app.billing.rails import PaymentRails
from domain.credit import Credit, CreditMode
from domain.errors import DomainError
from domain.events import PaymentCompleted
from domain.switch_off import is_switched_off
from domain.upgrade import UpgradeConfig
from ports.jobs import Job, ProcessVmUpgrade, SendAdminNotification, SendNotification, SpawnVm
from ports.queue import WorkQueue

log = logging.getLogger(__name__)


@attrs.define
class Reactions:
    """What the subscribers of one event did: jobs sent, payments cancelled, failures."""

    jobs: list[Job] = attrs.field(factory=list)
    cancelled: list[bytes] = attrs.field(factory=list)
    problems: list[str] = attrs.field(factory=list)

    def problem(self, what: str, err: BaseException) -> None:
        text = err.message if isinstance(err, DomainError) else repr(err)
        log.error("payment follow-up failed: %s: %s", what, text, exc_info=err)
        self.problems.append(f"{what}: {text}")


#: reacts to one booked payment; records what it did (or failed to do) in `Reactions`
Subscriber = Callable[[PaymentCompleted, Reactions], Awaitable[None]]


async def publish(
    event: PaymentCompleted, subscribers: Sequence[Subscriber], reactions: Reactions
) -> Reactions:
    """Run every subscriber in order; one raising is reported and the next still runs."""
    for subscriber in subscribers:
        try:
            await subscriber(event, reactions)
        except Exception as err:  # never undo the payment
            name = getattr(subscriber, "__name__", type(subscriber).__name__)
            reactions.problem(f"subscriber {name}", err)
    return reactions


async def _queue(queue: WorkQueue, job: Job, out: Reactions, doing: str) -> None:
    """Send a subscriber's job; a queue that refuses it is reported as a problem of `doing`."""
    try:
        await queue.send(job)
        out.jobs.append(job)
    except Exception as err:
        out.problem(doing, err)


def provision_paid_vms(queue: WorkQueue) -> Subscriber:
    """SpawnVm for each VM a Purchase/Renewal paid, ProcessVmUpgrade for each upgraded VM
    (§7.3); the worker runs them."""

    async def provision_paid_vms(event: PaymentCompleted, out: Reactions) -> None:
        jobs: list[tuple[int, Job]] = [(vm_id, SpawnVm(vm_id=vm_id)) for vm_id in event.paid_vm_ids]
        for up in event.upgrades:
            config = UpgradeConfig(
                new_cpu=up.new_cpu, new_memory=up.new_memory, new_disk=up.new_disk
            )
            jobs.append((up.vm_id, ProcessVmUpgrade(vm_id=up.vm_id, config=config)))
        for vm_id, job in jobs:
            await _queue(queue, job, out, f"following up VM {vm_id}")

    return provision_paid_vms


def cancel_expired_payments(rails: PaymentRails | None) -> Subscriber:
    """Each invoice the booking expired is cancelled at its OWN provider (D13, D23)."""

    async def cancel_expired_payments(event: PaymentCompleted, out: Reactions) -> None:
        for payment in event.expired_payments:
            if rails is None:
                out.problems.append(f"payment {payment.id.hex()}: no rails to cancel it at")
                continue
            try:
                await rails.cancel(payment)
                out.cancelled.append(payment.id)
            except Exception as err:
                out.problem(f"cancelling payment {payment.id.hex()}", err)

    return cancel_expired_payments


def tell_admins_of_credit(queue: WorkQueue) -> Subscriber:
    """A stale or unvaluable payment is reported to the admins (D23) and logged."""

    async def tell_admins_of_credit(event: PaymentCompleted, out: Reactions) -> None:
        if event.credit is None or not event.needs_operator:
            return
        title, message = credit_notice(event, event.credit)
        log.warning("%s: %s", title, message.replace("\n", " "))
        job = SendAdminNotification(title=title, message=message)
        await _queue(queue, job, out, "telling the admins about a stale payment")

    return tell_admins_of_credit


def tell_user_of_unrestorable(queue: WorkQueue) -> Subscriber:
    """A payment that could not bring its VM back (or set up a late-paid order) became account
    credit: its payer is told so in plain words, without the operator's reasons (host and
    row ids stay with the admins). One whose value could not be booked as credit
    (`Credit.value_credited` False: no rate to value it, or a credit note took part of its
    invoice back first) is told that no credit was added and that the admins were told; one
    paid with account credit alone, that no money was added beside the credit given back."""

    async def tell_user_of_unrestorable(event: PaymentCompleted, out: Reactions) -> None:
        if event.credit is None or event.credit.mode is not CreditMode.UNRESTORABLE:
            return
        sub = event.subscription
        paid = f"Your payment of {formatted(event.payment)} for subscription {sub.id}"
        if event.credit.payer_note:  # an upgrade not applied says why
            what = f"{paid} {event.credit.payer_note}"
        else:
            what = (
                f"{paid} arrived after its VM was deleted or its order had lapsed, and the VM "
                "cannot be provided again now. No time was bought"
            )
        if event.credit.value_credited and event.credit.given_back and not event.payment.total:
            # paid with account credit alone: no money to credit, the credit comes back apart
            title = "Account credit given back"
            message = f"{what}. It was paid with account credit alone: nothing else was added."
        elif event.credit.value_credited:
            # money kept as credit is a prepayment: credited net of its VAT, if any
            title = "Payment added to your account credit"
            message = (
                f"{what}: the payment's net value was added to your account credit, which "
                "pays your next order, renewal or upgrade first."
            )
        else:
            title = "Payment received but not credited"
            message = (
                f"{what}. No account credit was added for it: its value could not be booked "
                "as credit automatically. Our admins have been told and will settle it "
                "with you."
            )
        if event.credit.given_back:
            message += (
                f" The account credit it used, {event.credit.given_back}, was given back to "
                "your balance as it was."
            )
        job = SendNotification(
            user_id=sub.user_id, title=f"[Subscription {sub.id}] {title}", message=message
        )
        await _queue(queue, job, out, "telling the user about a payment booked as credit")

    return tell_user_of_unrestorable


def tell_owner_of_capped_rest(queue: WorkQueue) -> Subscriber:
    """A payment worth more than the most one payment buys (`Credit.capped`: an LNURL
    payment made worth more than 120 intervals by a price cut after its invoice) gave that
    much time; its subscription's owner is told so, and that the rest became their account
    credit (or, when it could not be valued, that the admins were told). A payment whose
    time would have ended past the calendar (`Credit.past_calendar`) gave none, and all its
    value is credited so. An LNURL payer is anonymous: the owner is who the credit and the
    notice go to."""

    async def tell_owner_of_capped_rest(event: PaymentCompleted, out: Reactions) -> None:
        credit = event.credit
        if credit is None or credit.mode is not CreditMode.BY_VALUE or not credit.capped:
            return
        sub = event.subscription
        until = "" if sub.expires is None else f" (it now expires {sub.expires:%Y-%m-%d %H:%M} UTC)"
        what = (
            f"A payment of {formatted(event.payment)} for subscription {sub.id} was worth more "
            f"than {credit.cap} billing intervals at today's price, the most one payment buys: "
            f"{credit.cap} intervals were added{until}"
        )
        rest, title = "the rest of its value", "Payment capped"
        if credit.past_calendar:
            what = (
                f"A payment of {formatted(event.payment)} for subscription {sub.id} would have "
                f"extended it past the end of the calendar (year 9999): no time was added{until}"
            )
            rest, title = "its value", "Payment not turned into time"
        if credit.rest_credited:
            message = (
                f"{what}, and {rest}, {credit.rest_credited}, was added to "
                "your account credit, which pays your next renewal or upgrade first."
            )
            title = (
                "Payment not turned into time, its value added to your account credit"
                if credit.past_calendar
                else "Payment capped, the rest added to your account credit"
            )
        else:
            message = (
                f"{what}. {rest.capitalize()} could not be added to your account credit "
                "automatically: our admins have been told and will settle it with you."
            )
        job = SendNotification(
            user_id=sub.user_id, title=f"[Subscription {sub.id}] {title}", message=message
        )
        await _queue(queue, job, out, "telling the owner about a capped payment")

    return tell_owner_of_capped_rest


def default_subscribers(rails: PaymentRails | None, queue: WorkQueue) -> list[Subscriber]:
    """The production subscribers, in the order they run."""
    return [
        provision_paid_vms(queue),
        cancel_expired_payments(rails),
        tell_admins_of_credit(queue),
        tell_user_of_unrestorable(queue),
        tell_owner_of_capped_rest(queue),
    ]


def credit_notice(event: PaymentCompleted, credit: Credit) -> tuple[str, str]:
    """Title and text of the admins' notice about a payment not credited as quoted (D23)."""
    payment, sub = event.payment, event.subscription
    what = {
        CreditMode.BY_VALUE: f"credited by value: {credit.seconds} seconds",
        CreditMode.CALENDAR: f"credited as quoted: {credit.seconds} seconds",
        CreditMode.UNVALUED: "NOT credited: it cannot be valued at the current price",
        CreditMode.UNPRICED: f"credited as quoted ({credit.seconds} seconds): no current price",
        CreditMode.UNRESTORABLE: "booked as account credit: its VM cannot be restored or placed",
    }[credit.mode]
    if credit.past_calendar:
        what = "given no time: it would have run past the end of the calendar"
    no_range = any(why.startswith(WHY_PREFIX) for why in credit.changes)
    switched_off = credit.mode is CreditMode.UNRESTORABLE and is_switched_off(sub)
    if credit.mode is CreditMode.UNRESTORABLE and event.is_upgrade:
        what = "booked as account credit: the upgrade was not applied"
    elif switched_off:
        what = "booked as account credit: an administrator switched the subscription off"
    elif credit.mode is CreditMode.UNRESTORABLE and no_range:
        what = "booked as account credit: its IP range could not be given"
    if credit.mode is CreditMode.UNRESTORABLE and not credit.value_credited:
        # nothing bought and nothing credited: the admins settle it (the payer is told so)
        if event.is_upgrade:
            cause = "the upgrade was not applied"
        elif switched_off:
            cause = "an administrator switched the subscription off"
        elif no_range:
            cause = "its IP range could not be given"
        else:
            cause = "its VM cannot be restored or placed"
        what = f"NOT booked as account credit, and bought nothing: {cause}"
    lines = [
        f"Payment {payment.id.hex()} of {formatted(payment)} for subscription {sub.id} "
        f"(user {sub.user_id}) was {what}.",
    ]
    if credit.intervals is not None and credit.mode is CreditMode.BY_VALUE:
        share = Decimal(credit.intervals.numerator) / Decimal(credit.intervals.denominator)
        lines.append(f"It buys {share:.4f} intervals at today's price.")
    if credit.changes and credit.mode is CreditMode.UNRESTORABLE:
        lines.append("Why: " + "; ".join(credit.changes) + ".")
    if credit.given_back:
        lines.append(
            f"The account credit it had applied, {credit.given_back}, was given back in its "
            "own currency, apart from its value."
        )
    elif credit.changes:
        lines.append("Changed since the quote: " + "; ".join(credit.changes) + ".")
    if credit.past_calendar:
        booked = (
            f"its value, {credit.rest_credited}, was booked as account credit of user "
            f"{sub.user_id}, who was told"
            if credit.rest_credited
            else "its value could not be booked as account credit (no rate to value it): it "
            f"is for you to settle with user {sub.user_id}, who was told so"
        )
        lines.append(
            "No time was added: the time it pays for would end past the end of the calendar "
            f"(year 9999); {booked}."
        )
    elif credit.capped and credit.rest_credited:
        lines.append(
            f"The time was capped at {credit.cap} intervals; the rest of its value, "
            f"{credit.rest_credited}, was booked as account credit of user {sub.user_id}, "
            "who was told (its invoice bills the whole payment as the renewal, VAT included)."
        )
    elif credit.capped:
        lines.append(
            f"The time was capped at {credit.cap} intervals; the rest of its value could not "
            "be booked as account credit (no rate to value it): it is for you to settle with "
            f"user {sub.user_id}, who was told so."
        )
    if sub.expires is None:
        lines.append("The subscription was never paid for: it has no expiry.")
    else:
        lines.append(f"The subscription now expires {sub.expires.isoformat()}.")
    if credit.past_calendar:
        subject = "Payment past the end of the calendar"
    elif credit.mode is not CreditMode.UNRESTORABLE and credit.capped and not credit.changes:
        subject = f"Payment capped at {credit.cap} intervals"
    elif credit.mode is not CreditMode.UNRESTORABLE:
        subject = "Payment at a changed price"
    elif event.is_upgrade:
        subject = "Upgrade paid but not applied"
    elif switched_off:
        subject = "Payment for a switched-off subscription"
    elif no_range:
        subject = "Payment for an IP range that could not be given"
    else:
        subject = "Payment for a VM that cannot be restored or placed"
    return f"[Subscription {sub.id}] {subject}", "\n".join(lines)
