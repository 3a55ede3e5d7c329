"""Complete a payment: book the money once (D9), then follow up per product (§7.1, §7.3)."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

import attrs

from app.billing.credit_release import respend_released
from app.billing.errors import PaymentNotFound, VmNotFound
from app.billing.price_in_force import cancel_quietly
from app.billing.rails import PaymentRails
from app.billing.upgrades import upgrade_in
from app.payment_completion import CompletedPayment, apply_payment
from domain.credit import Credit, CreditMode
from domain.enums import PaymentMethod, SubscriptionType, VmHistoryActionType
from domain.errors import DomainError, DowngradeRefused, SpecOutOfLimits
from domain.model import LineItem, SubscriptionPayment, Vm, VmHistory
from domain.money import Currency, Money
from domain.upgrade import InvalidUpgradeConfig, UpgradeConfig
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
    follow: _Follow,
) -> None:
    """SpawnVm for a purchase or renewal, ProcessVmUpgrade for an Upgrade (§7.3); the history
    and an upgrade's records were written with the booking (`_Booking`).

    The jobs go to the work queue after the commit. With the in-process queue a job is lost
    when the process dies before it runs: a lost SpawnVm is made good by the VM check (a
    paid VM the host does not know is spawned again); a lost ProcessVmUpgrade leaves the
    VM's records upgraded (billing is right, the next renewal prices what was bought) but
    the VM running at its old size on its host until the job is sent again (`process_vm_
    upgrade` is idempotent: its records step is a no-op for an applied config, and the
    resize sets the target size). The VM check does not compare sizes with the host yet
    (hosts report no size): an operator re-sends it. See the report of issue 8's follow-up.
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
    config = {"new_cpu": cfg.new_cpu, "new_memory": cfg.new_memory, "new_disk": cfg.new_disk}
    await follow.send(Job("ProcessVmUpgrade", {"vm_id": vm.id, "config": config}))


#: refusals no retry can overcome: the config is malformed, or is a downgrade of (or outside
#: the limits next to) what the VM has now
_NEVER_APPLICABLE = (InvalidUpgradeConfig, DowngradeRefused, SpecOutOfLimits)


class _Booking:
    """The `record` hook of `apply_payment`: what a payment changes besides the money,
    written inside the booking transaction, so nothing of it can be lost to a crash between
    two transactions (a replay finds the payment paid and does nothing).

    Each VM's PaymentReceived, and Renewed when time was bought (D9: one row each); each paid
    IP range's ended allocations re-activated (§14 gap; not for an Upgrade); a paid Upgrade
    applied to the VM's records (D12: expiry untouched), expiring the subscription's now
    stale Purchase/Renewal quotes (D23), collected in `stale` for cancelling after the
    commit. A failure to apply the upgrade raises: the payment stays unbooked and the
    webhook retry or reconciliation completes it later. An upgrade the VM cannot take (a
    downgrade next to what it has now, outside the pricing's limits: a rival upgrade paid
    anyway) is booked without being applied and reported (`problems`): the money came in,
    an operator settles it. A VM missing here is reported by the follow-up.
    """

    def __init__(self) -> None:
        self.stale: list[SubscriptionPayment] = []
        self.problems: list[str] = []

    async def __call__(self, uow: UnitOfWork, done: CompletedPayment) -> None:
        self.stale, self.problems = [], []
        payment = done.payment
        now = payment.paid_at
        assert now is not None
        problem = await respend_released(uow, payment)  # credit given back, then paid: issue 13
        if problem is not None:
            self.problems.append(problem)
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
            if done.is_upgrade:
                await self._upgrade(uow, done, vm, now)
            elif (payment.time_value or 0) > 0:
                await uow.vm_history.add(_renewed(vm.id, done, now))

    async def _upgrade(
        self, uow: UnitOfWork, done: CompletedPayment, vm: Vm, now: datetime
    ) -> None:
        # the booking transaction holds the subscription lock; re-read it for what the
        # booking wrote (an Upgrade changes no expiry, D12)
        sub = await uow.subscriptions.get(done.subscription.id) or done.subscription
        try:
            cfg = UpgradeConfig.from_json(done.payment.metadata)
            applied = await upgrade_in(uow, sub, vm, cfg, now)
        except _NEVER_APPLICABLE as err:
            text = f"upgrade of VM {vm.id} paid but not applied: {err.message}"
            log.error("%s (payment %s)", text, done.payment.id.hex())
            self.problems.append(text)
            return
        if applied is not None:
            self.stale += applied.expired


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

    `apply_payment` books the money exactly once, with the VM history, the IP range
    re-activation and a paid upgrade's records in the same transaction (`_Booking`); when
    it flips nothing (already paid, replayed settlement, duplicate webhook, a concurrent
    caller won) the report says so and nothing else happens. Otherwise each VM follows up
    (SpawnVm, or ProcessVmUpgrade), then every competing Upgrade payment (D13), rival
    Purchase invoice and stale quote (D23) expired in that transaction is cancelled at its
    OWN provider.
    Unknown payment ids raise `PaymentNotFound` (404, D14).
    """
    booking = _Booking()
    done = await apply_payment(uow_factory, payment_id, clock, booking)
    if done is None:
        async with uow_factory() as uow:
            known = await uow.payments.get(payment_id)
        if known is None:
            raise PaymentNotFound("Payment not found")
        return CompletionReport(payment_id=payment_id, completed=False)
    follow = _Follow(queue)
    follow.stale += booking.stale
    follow.problems += booking.problems
    for item in done.line_items:
        try:
            if item.subscription_type is SubscriptionType.VPS:
                await _on_vm_payment(uow_factory, done, item, follow)
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

