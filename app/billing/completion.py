"""Complete a payment: book the money once (D9), then follow up per product (§7.1, §7.3)."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

import attrs

from app.billing.errors import PaymentNotFound, VmNotFound
from app.billing.price_in_force import cancel_quietly
from app.billing.rails import PaymentRails
from app.billing.upgrades import upgrade_records
from app.payment_completion import CompletedPayment, apply_payment
from domain.credit import Credit, CreditMode
from domain.enums import PaymentMethod, SubscriptionType, VmHistoryActionType
from domain.errors import DomainError
from domain.model import LineItem, SubscriptionPayment, VmHistory
from domain.money import Currency, Money
from domain.upgrade import UpgradeConfig
from ports.clock import Clock
from ports.queue import Job, WorkQueue
from ports.storage import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class CompletionReport:
    """What completing a payment did. `completed` False: it was already paid, nothing ran.

    `problems` lists follow-up steps that failed after the money was booked; they are logged
    and never undo the payment (the worker's checks or an operator pick them up).
    """

    payment_id: bytes
    completed: bool
    jobs: tuple[Job, ...] = ()
    cancelled: tuple[bytes, ...] = ()
    problems: tuple[str, ...] = ()


def _formatted(payment: SubscriptionPayment) -> str:
    try:
        return str(Money(Currency.parse(payment.currency), payment.total))
    except DomainError:
        return f"{payment.currency} {payment.total}"


def _received(vm_id: int, payment: SubscriptionPayment, now: datetime) -> VmHistory:
    seconds = payment.time_value or 0
    return VmHistory(
        id=0,
        vm_id=vm_id,
        action_type=VmHistoryActionType.PAYMENT_RECEIVED,
        timestamp=now,
        metadata={
            "payment_id": payment.id.hex(),
            "payment_method": payment.payment_method.display_name,
            "payment_amount": payment.total,
            "payment_currency": payment.currency,
            "time_added_seconds": seconds,
        },
        description=(
            f"VM {vm_id} received payment of {_formatted(payment)} ({seconds} seconds added)"
        ),
    )


def _renewed(vm_id: int, done: CompletedPayment, now: datetime) -> VmHistory:
    """The Renewed entry with the real old and new expiry (the reference logged new twice)."""
    payment, old, new = done.payment, done.subscription_before.expires, done.subscription.expires
    assert new is not None
    metadata: dict[str, object] = {
        "time_added_seconds": payment.time_value,
        "payment_id": payment.id.hex(),
        "payment_amount": payment.total,
        "payment_currency": payment.currency,
    }
    if done.credit is not None and done.credit.mode is not CreditMode.CALENDAR:
        metadata["credit"] = done.credit.to_json()
    return VmHistory(
        id=0,
        vm_id=vm_id,
        action_type=VmHistoryActionType.RENEWED,
        timestamp=now,
        previous_state={"expires": None if old is None else old.isoformat()},
        new_state={"expires": new.isoformat()},
        metadata=metadata,
        description=f"VM {vm_id} was renewed until {new:%Y-%m-%d %H:%M} UTC",
    )


class _Follow:
    """Collects the jobs sent and the problems met while following up one payment."""

    def __init__(self, queue: WorkQueue) -> None:
        self.queue = queue
        self.jobs: list[Job] = []
        self.problems: list[str] = []
        self.stale: list[SubscriptionPayment] = []

    async def send(self, job: Job) -> None:
        await self.queue.send(job)
        self.jobs.append(job)

    def problem(self, what: str, err: BaseException) -> None:
        text = err.message if isinstance(err, DomainError) else repr(err)
        log.error("payment follow-up failed: %s: %s", what, text, exc_info=err)
        self.problems.append(f"{what}: {text}")


async def _on_vm_payment(
    uow_factory: UnitOfWorkFactory,
    done: CompletedPayment,
    item: LineItem,
    now: datetime,
    follow: _Follow,
) -> None:
    """SpawnVm for a purchase or renewal, the upgrade for an Upgrade (§7.3); the history was
    written with the booking (`_record_booking`).

    A paid upgrade is applied to the VM's records right here (D12: expiry untouched), so the
    next renewal prices what was bought even if the job is lost; `ProcessVmUpgrade` then
    resizes the VM on its host, and its own apply step is a no-op for an applied config.
    """
    payment = done.payment
    async with uow_factory() as uow:
        vm = await uow.vms.get_by_line_item(item.id)
    if vm is None:
        raise VmNotFound(f"no live VM on line item {item.id}")
    if not done.is_upgrade:
        await follow.send(Job("SpawnVm", {"vm_id": vm.id}))
        return
    cfg = UpgradeConfig.from_json(payment.metadata)
    # NOT crash-safe yet: a process killed after the booking and before this step (or before
    # the job is sent) leaves the upgrade paid but never applied, and no replay or check
    # applies it later. Moving it into `_record_booking` would make a failing application
    # undo the payment, a rule change left to the completion rules (D23) owners.
    try:
        applied = await upgrade_records(uow_factory, now, vm_id=vm.id, cfg=cfg)
        if applied is not None:
            follow.stale += applied.expired
    except Exception as err:  # the job retries it; the payment stands
        follow.problem(f"applying upgrade of VM {vm.id}", err)
    config = {"new_cpu": cfg.new_cpu, "new_memory": cfg.new_memory, "new_disk": cfg.new_disk}
    await follow.send(Job("ProcessVmUpgrade", {"vm_id": vm.id, "config": config}))


async def _record_booking(uow: UnitOfWork, done: CompletedPayment) -> None:
    """What a payment changes besides the money, written inside the booking transaction
    (`apply_payment`'s `record`), so nothing of it can be lost to a crash between two
    transactions (a replay finds the payment paid and does nothing): each VM's PaymentReceived,
    and Renewed when time was bought (D9: one row each); each paid IP range's ended
    allocations re-activated (§14 gap; not for an Upgrade). A VM missing here is reported
    by the follow-up (`_on_vm_payment`).
    """
    payment = done.payment
    now = payment.paid_at
    assert now is not None
    for item in done.line_items:
        if item.subscription_type is SubscriptionType.IP_RANGE and not done.is_upgrade:
            for sold in await uow.ip_range_subscriptions.list_by_line_item(item.id):
                if not sold.is_active:
                    await uow.ip_range_subscriptions.set_active(sold.id, True, now)
        if item.subscription_type is not SubscriptionType.VPS:
            continue
        vm = await uow.vms.get_by_line_item(item.id)
        if vm is None:
            continue
        await uow.vm_history.add(_received(vm.id, payment, now))
        if not done.is_upgrade and (payment.time_value or 0) > 0:
            await uow.vm_history.add(_renewed(vm.id, done, now))


def _credit_notice(done: CompletedPayment, credit: Credit) -> tuple[str, str]:
    """Title and text of the admins' notice about a payment not credited as quoted (D23)."""
    payment, sub = done.payment, done.subscription
    what = {
        CreditMode.BY_VALUE: f"credited by value: {credit.seconds} seconds",
        CreditMode.CALENDAR: f"credited as quoted: {credit.seconds} seconds",
        CreditMode.UNVALUED: "NOT credited: it cannot be valued at the current price",
        CreditMode.UNPRICED: f"credited as quoted ({credit.seconds} seconds): no current price",
    }[credit.mode]
    lines = [
        f"Payment {payment.id.hex()} of {_formatted(payment)} for subscription {sub.id} "
        f"(user {sub.user_id}) was {what}.",
    ]
    if credit.intervals is not None and credit.mode is CreditMode.BY_VALUE:
        share = Decimal(credit.intervals.numerator) / Decimal(credit.intervals.denominator)
        lines.append(f"It buys {share:.4f} intervals at today's price.")
    if credit.changes:
        lines.append("Changed since the quote: " + "; ".join(credit.changes) + ".")
    if credit.capped:
        lines.append("The time was capped; the rest is for you to settle with the user.")
    expires = sub.expires.isoformat() if sub.expires else "none"
    lines.append(f"The subscription now expires {expires}.")
    return f"[Subscription {sub.id}] Payment at a changed price", "\n".join(lines)


async def _tell_admins(done: CompletedPayment, credit: Credit, follow: _Follow) -> None:
    """A stale or unvaluable payment is reported to the admins (D23) and logged."""
    title, message = _credit_notice(done, credit)
    log.warning("%s: %s", title, message.replace("\n", " "))
    try:
        await follow.send(Job("SendAdminNotification", {"title": title, "message": message}))
    except Exception as err:  # never undo the payment
        follow.problem("telling the admins about a stale payment", err)


async def complete_payment(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
    *,
    payment_id: bytes,
) -> CompletionReport:
    """The only place where paying changes state (D9, D12, D13).

    `apply_payment` books the money exactly once, with the VM history and the IP range
    re-activation in the same transaction (`_record_booking`); when it flips nothing
    (already paid, replayed settlement, duplicate webhook, a concurrent caller won) the
    report says so and nothing else happens. Otherwise each VM follows up (SpawnVm, or the
    upgrade), then every competing Upgrade payment expired in that transaction is cancelled
    at its OWN provider (D13).
    Unknown payment ids raise `PaymentNotFound` (404, D14).
    """
    done = await apply_payment(uow_factory, payment_id, clock, _record_booking)
    if done is None:
        async with uow_factory() as uow:
            known = await uow.payments.get(payment_id)
        if known is None:
            raise PaymentNotFound("Payment not found")
        return CompletionReport(payment_id=payment_id, completed=False)
    now = done.payment.paid_at or clock.now()
    follow = _Follow(queue)
    for item in done.line_items:
        try:
            if item.subscription_type is SubscriptionType.VPS:
                await _on_vm_payment(uow_factory, done, item, now, follow)
            elif item.subscription_type is not SubscriptionType.IP_RANGE:  # booked already
                log.warning("no handler for line item type %s", item.subscription_type.name)
        except Exception as err:  # never undo the payment
            follow.problem(f"line item {item.id}", err)
    cancelled: list[bytes] = []
    for rival in done.cancelled_upgrades:
        try:
            await rails.cancel(rival)
            cancelled.append(rival.id)
        except Exception as err:
            follow.problem(f"cancelling payment {rival.id.hex()}", err)
    stale_cancelled, stale_problems = await cancel_quietly(
        rails, [*done.cancelled_purchases, *follow.stale]
    )
    cancelled += stale_cancelled
    follow.problems += stale_problems
    if done.credit is not None and done.credit.needs_operator:
        await _tell_admins(done, done.credit, follow)
    return CompletionReport(
        payment_id=payment_id,
        completed=True,
        jobs=tuple(follow.jobs),
        cancelled=tuple(cancelled),
        problems=tuple(follow.problems),
    )


async def complete_card_payment(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
    *,
    method: PaymentMethod,
    external_id: str,
) -> CompletionReport | None:
    """A signed card webhook's completion (§7.5): unknown order → `PaymentNotFound` (D14);
    then the provider's own word decides, as the reference's `try_complete`: an order it
    does not call paid changes nothing (None). Without that rail here, the signature alone
    decides (logged)."""
    async with uow_factory() as uow:
        payment = await uow.payments.get_by_external_id(external_id)
    if payment is None:
        raise PaymentNotFound("Payment not found")
    confirmed = await rails.provider_says_paid(method, external_id)
    if confirmed is False:
        log.warning("%s order %r is not paid at the provider", method.display_name, external_id)
        return None
    if confirmed is None:
        log.warning("%s order %r completed on its webhook signature alone (no rail here)",
                    method.display_name, external_id)
    return await complete_payment(uow_factory, clock, rails, queue, payment_id=payment.id)

