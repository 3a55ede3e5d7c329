"""check_subscriptions: each due lifecycle action once per subscription period (§9.4, D15, D16)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import attrs

from app.billing.order_locks import under_region_lock
from app.billing.overtaken import tell_overtaken_credited
from app.lifecycle_codes import ACTION_CODES, auto_renew_code, auto_renew_failed_code
from app.worker import messages
from app.worker.context import AutoRenewalNotStarted, RenewalOutcome, WorkerDeps
from app.worker.pending import cancel_ended, end_pending
from app.worker.provisioning import (
    delete_on_host,
    history,
    is_paid_now,
    record_deleted,
    revive_paid,
    spawn_lease,
    stop_on_host,
)
from app.worker.subscription_end import end_subscription
from domain.enums import SubscriptionPaymentType, SubscriptionType, VmHistoryActionType
from domain.events import PaymentCompleted
from domain.lifecycle import (
    AUTO_RENEW_RETRIES,
    EXPIRING_SOON_LEAD,
    DueAction,
    LifecycleAction,
    auto_renew_retry_at,
    decide_lifecycle_actions,
    deletion_due_at,
    grace_period,
    subscription_age,
)
from domain.model import LineItem, Subscription, SubscriptionPayment, Vm
from domain.switch_off import is_switched_off
from ports.jobs import CheckVm, SpawnVm
from ports.storage import DueWindow, StorageBusy, UnitOfWork
from ports.vmhost import VmHost, VmRunningState, VmRunState

log = logging.getLogger("lnvps.worker.lifecycle")

_A = LifecycleAction


@attrs.define
class LifecycleReport:
    """What one run did: actions performed (claimed and committed) and failures."""

    due: int = 0
    done: list[DueAction] = attrs.field(factory=list)
    failed: list[DueAction] = attrs.field(factory=list)
    #: ids of subscriptions whose due actions could not be decided (a bad row, or whether it
    #: can auto-renew could not be read): skipped this run
    undecided: list[int] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class _Claimed:
    """A claimed action's subscription as re-read under its row lock, with its products."""

    sub: Subscription
    items: list[LineItem]
    vms: list[Vm]
    subject: str
    descr: str
    hint: str
    #: D24: payments the deletion expired, cancelled at their rails after the commit
    ended: list[SubscriptionPayment] = attrs.field(factory=list)
    #: host clients of the VMs, for actions that call the host (resolved while claiming).
    clients: dict[int, VmHost] = attrs.field(factory=dict)
    #: the build leases (`spawn_lease`) a deletion holds during its host call, by VM id
    builds: dict[int, str] = attrs.field(factory=dict)
    #: the region whose lock the recording holds (None: none; `_record`)
    region: int | None = None
    #: D24: payments booked as credit because the VM they revived had no place (`revive_paid`)
    credited: list[PaymentCompleted] = attrs.field(factory=list)
    #: D24: VMs a payment overtook the deletion of but that stay deleted (no place for them)
    unplaced: list[int] = attrs.field(factory=list)
    #: an auto-renewal: which attempt of the period this is (0: the first; `_retry`)
    attempt: int = 0


async def _load(
    deps: WorkerDeps, uow: UnitOfWork, sub: Subscription, *, with_vms: bool = True
) -> _Claimed:
    """The subscription's line items and (`with_vms`) the VM of each VPS item. The items
    are read as shown (`LineItems.list_shown`), with the currency of each item's amount
    where it is not the subscription's: a custom VM's is its custom pricing's, the one its
    order or an upgrade wrote the amount in, which a subscription billing other items beside
    it does not take (`app.billing.upgrades`). One statement: no read per custom VM."""
    shown = await uow.line_items.list_shown((sub.id,))
    items = shown.items.get(sub.id, [])
    vms = []
    for item in items if with_vms else ():
        if item.subscription_type is SubscriptionType.VPS:
            vm = await uow.vms.get_by_line_item(item.id)
            if vm is not None:
                vms.append(vm)
    vm_id = vms[0].id if len(vms) == 1 else None
    return _Claimed(
        sub=sub,
        items=items,
        vms=vms,
        subject=messages.subject_of(sub, items, vm_id),
        descr=messages.describe(sub, items, shown.currencies),
        hint=messages.renew_hint(
            deps.public_url, sub, vm_id, lightning_address=deps.lightning_address
        ),
    )


async def _still_due(
    deps: WorkerDeps, uow: UnitOfWork, due: DueAction, auto: bool, now: datetime
) -> Subscription | None:
    """The subscription under its row lock when `due` is still due, else None."""
    sub = await uow.subscriptions.get_for_update(due.subscription_id)
    if sub is None or due not in decide_lifecycle_actions(sub, now, deps.delete_after_days, auto):
        return None
    return sub


async def _claim(
    deps: WorkerDeps, uow: UnitOfWork, due: DueAction, auto: bool, now: datetime
) -> _Claimed | None:
    """Lock the subscription, check the action is still due, and claim it (D15).

    The row lock (taken before the mark) serialises the action with a payment completing
    at the same moment: either the payment lands first and the re-read shows a new period
    (nothing is due), or the action commits first. The mark is in the same transaction as
    the action's effects, so a rolled-back action leaves no mark and is retried next run.
    """
    sub = await _still_due(deps, uow, due, auto, now)
    if sub is None:
        return None
    attempt = 0
    if not await uow.lifecycle_marks.claim(sub.id, ACTION_CODES[due.action], due.period, now):
        if due.action is not _A.AUTO_RENEW_ATTEMPT:
            return None
        retry = await _retry(uow, sub, due.period, now)
        if retry is None:
            return None
        attempt = retry
    claimed = await _load(deps, uow, sub, with_vms=PLAN[due.action].reads_vms)
    return attrs.evolve(claimed, attempt=attempt)


async def _retry(uow: UnitOfWork, sub: Subscription, period: datetime, now: datetime) -> int | None:
    """The auto-renewal retry of the period claimed now (its attempt number), or None.

    Due only when the period's latest attempt recorded that it failed before its wallet
    was asked (`_defer`) and its retry time has come (`auto_renew_retry_at`). The retry's
    own mark is claimed here, in the transaction that holds the subscription's row lock, so
    each retry runs once (D15), as the first attempt does."""
    marks = await uow.lifecycle_marks.claims(sub.id, period)
    attempt = 0
    while attempt < AUTO_RENEW_RETRIES and auto_renew_code(attempt + 1) in marks:
        attempt += 1
    failed_at = marks.get(auto_renew_failed_code(attempt))
    if failed_at is None:
        return None
    retry_at = auto_renew_retry_at(sub, failed_at, attempt + 1)
    if retry_at is None or now < retry_at:
        return None
    if not await uow.lifecycle_marks.claim(sub.id, auto_renew_code(attempt + 1), period, now):
        return None
    return attempt + 1


def lease_name(due: DueAction) -> str:
    """The worker lease of a lifecycle action that calls the host (one per action and period)."""
    period = int(due.period.timestamp())
    return f"lifecycle:{due.subscription_id}:{ACTION_CODES[due.action]}:{period}"


async def _take(
    deps: WorkerDeps, uow: UnitOfWork, due: DueAction, auto: bool, now: datetime
) -> tuple[_Claimed, str | None] | None:
    """Under the row lock: still due and not done for this period; then this worker's lease
    (token) when a VM is on a host, else the mark right away (token None: nothing to call)."""
    sub = await _still_due(deps, uow, due, auto, now)
    if sub is None:
        return None
    code = ACTION_CODES[due.action]
    if await uow.lifecycle_marks.is_claimed(sub.id, code, due.period):
        return None
    claimed = await _load(deps, uow, sub)
    # stamped and judged at the present moment, not the run's start: a lease taken late in a
    # long run must not look stale at once to another worker, which would repeat the host call
    held = deps.clock.now()
    stale = held - deps.host_lease
    builds = {}
    if PLAN[due.action].holds_builds:  # every VM's, built or not (see `_Plan.holds_builds`)
        for vm in claimed.vms:
            build = await uow.worker_leases.take(spawn_lease(vm.id), held, stale)
            if build is None:  # busy right now: retried next run (nothing committed)
                log.info(
                    "VM %s is being built, resized or started; its %s waits for the next run",
                    vm.id,
                    due.action.value,
                )
                return None
            builds[vm.id] = build
    clients = {}
    for vm in claimed.vms:
        if vm.is_provisioned:
            clients[vm.id] = (await deps.host_of(uow, vm.host_id))[1]
    if not clients:  # no host call: claimed and recorded in this one transaction
        for vm_id, build in builds.items():  # none was busy: nothing is building them
            await uow.worker_leases.release(spawn_lease(vm_id), build)
        if not await uow.lifecycle_marks.claim(sub.id, code, due.period, now):
            return None
        return claimed, None
    token = await uow.worker_leases.take(lease_name(due), held, stale)
    if token is None:
        return None  # another worker is calling the host for it right now
    return attrs.evolve(claimed, clients=clients, builds=builds), token


def _vm_gone(c: _Claimed) -> bool:
    """Whether a VPS item of the subscription has no VM that is not deleted. An admin's delete
    ends the subscription (`end_if_no_vm_left`), but earlier versions left it active until
    its grace ran out, and such rows remain. Such a subscription cannot be renewed
    (`VmDeleted`): no renewal is tried, so no wallet or credit is charged, and the user,
    told of the deletion already, is neither asked to renew it nor told it was not renewed."""
    live = {vm.subscription_line_item_id for vm in c.vms}
    return any(i.subscription_type is SubscriptionType.VPS and i.id not in live for i in c.items)


async def _notice(deps: WorkerDeps, c: _Claimed, auto: bool, now: datetime) -> None:
    """N1 (no renewal possible) — claimed and committed before sending: at most once."""
    if _vm_gone(c):
        log.info("subscription %s: its VM is deleted; no expiring-soon notice", c.sub.id)
        return
    n = messages.expiring_soon(c.subject, c.sub, c.descr, c.hint)
    await deps.tell_user(c.sub.user_id, n.title, n.message)


async def _auto_renew(deps: WorkerDeps, c: _Claimed, auto: bool, now: datetime) -> None:
    """Pay the renewal of the claimed period from the user's wallet; each attempt once (D15).

    Paid: N2 "Auto-Renewed". Failed: N3, the expiring-soon warning with the error; but an
    attempt that failed before any payment request reached the wallet, for a passing cause
    (`AutoRenewalNotStarted`: no fresh exchange rate, the node unreachable), is recorded
    and tried again at a later run (`_defer`, `_retry`) while retries are left, and only the
    last failure is told. An attempt that asked the wallet is never repeated. A wallet
    that never answered (UNCONFIRMED) may or may not have paid, so the user is not told it
    renewed but gets the expiring-soon warning saying the payment is not confirmed and until
    when the invoice can be paid: that notice is the period's warning before the stop, sent
    at once, under this period's one auto-renewal mark (no second mark, no follow-up run). If
    the wallet did pay, its settlement completes the payment and moves the expiry as ever.
    A renewal the user paid after the claim, or a VM deleted meanwhile (NOT_DUE), leaves
    nothing to pay or to say (credit taken for it comes back); a wallet payment that bought
    no time (CREDITED: a renewal completed while the wallet paid, or the VM was deleted
    meanwhile and cannot be restored) is account credit, of which the completion tells the
    user.
    """
    if _vm_gone(c):
        log.info("subscription %s: its VM is deleted; not auto-renewed", c.sub.id)
        return
    assert c.sub.expires is not None  # an auto-renewal is due only before the expiry
    try:
        done = await deps.auto_renewer.attempt(c.sub, c.sub.expires)
    except AutoRenewalNotStarted as err:
        if await _defer(deps, c, err, now):
            return
        log.warning("auto-renewal of subscription %s failed: %s", c.sub.id, err.message)
        n = messages.expiring_soon(c.subject, c.sub, c.descr, c.hint, failure=err.message)
    except Exception as err:
        reason = getattr(err, "message", None) or str(err) or type(err).__name__
        log.warning("auto-renewal of subscription %s failed: %s", c.sub.id, reason)
        n = messages.expiring_soon(c.subject, c.sub, c.descr, c.hint, failure=reason)
    else:
        if done.outcome in (RenewalOutcome.NOT_DUE, RenewalOutcome.CREDITED):
            return
        if done.outcome is RenewalOutcome.UNCONFIRMED:
            n = messages.auto_renewal_unconfirmed(c.subject, c.sub, c.descr, c.hint, done.pay_by)
        else:
            n = messages.auto_renewed(c.subject, c.descr, now)
    await deps.tell_user(c.sub.user_id, n.title, n.message)


async def _defer(deps: WorkerDeps, c: _Claimed, err: AutoRenewalNotStarted, now: datetime) -> bool:
    """Record that the claimed attempt failed before its wallet was asked, so a later run
    tries again (`_retry`); True when it will, and nothing is told yet. False when no retry
    is left (`auto_renew_retry_at`) or the record could not be written: the failure is
    told now, as for any other (N3). The failure is dated the run's `now` (D5: the clock is
    read once per run), from which the next retry's wait counts."""
    assert c.sub.expires is not None
    failed_at = now
    retry_at = auto_renew_retry_at(c.sub, failed_at, c.attempt + 1)
    if retry_at is None:
        return False
    try:
        async with deps.uow_factory() as uow:
            code = auto_renew_failed_code(c.attempt)
            await uow.lifecycle_marks.claim(c.sub.id, code, c.sub.expires, failed_at)
            await uow.commit()
    except Exception:
        log.exception("auto-renewal of subscription %s: its failure not recorded", c.sub.id)
        return False
    log.warning(
        "auto-renewal of subscription %s failed before its wallet was asked (%s); tried again"
        " from %s",
        c.sub.id,
        err.message,
        retry_at.isoformat(),
    )
    return True


def _deadline(deps: WorkerDeps, sub: Subscription) -> tuple[int, datetime]:
    age = subscription_age(sub)
    due_at = deletion_due_at(sub, deps.delete_after_days)
    assert age is not None and due_at is not None
    return grace_period(age, deps.delete_after_days).days, due_at


Effect = Callable[[WorkerDeps, UnitOfWork, _Claimed, datetime], Awaitable[None]]
HostCall = Callable[[WorkerDeps, _Claimed], Awaitable[None]]
Check = Callable[[WorkerDeps, UnitOfWork, _Claimed, datetime], Awaitable[bool]]


async def _stop_on_host(deps: WorkerDeps, c: _Claimed) -> None:
    for vm in c.vms:
        if vm.id in c.clients:
            await stop_on_host(deps, c.clients[vm.id], vm)


async def _stop(deps: WorkerDeps, uow: UnitOfWork, c: _Claimed, now: datetime) -> None:
    """History Expired for each VM the host stopped (§7.3 on_expired)."""
    for vm in c.vms:
        await uow.vm_history.add(
            history(vm.id, VmHistoryActionType.EXPIRED, now, f"VM {vm.id} expired")
        )


async def _stop_notices(deps: WorkerDeps, c: _Claimed, auto: bool, now: datetime) -> None:
    """N6 per stopped VM; N5 when the subscription sells anything besides VMs."""
    days, deadline = _deadline(deps, c.sub)
    assert c.sub.expires is not None
    for vm in c.vms:
        n = messages.vm_expired(
            vm.id, c.sub.expires, days, deadline, c.hint, switched_off=is_switched_off(c.sub)
        )
        await deps.tell_user(c.sub.user_id, n.title, n.message)
        if deps.states is not None:
            await deps.states.set(vm.id, VmRunningState(state=VmRunState.STOPPED))
    if any(i.subscription_type is not SubscriptionType.VPS for i in c.items):
        n = messages.expired(c.subject, c.sub, c.descr, deadline, c.hint)
        await deps.tell_user(c.sub.user_id, n.title, n.message)


async def _deactivate(deps: WorkerDeps, uow: UnitOfWork, c: _Claimed, now: datetime) -> None:
    """End the IP-range allocations of the subscription's IP-range items (§7.3 IpRange)."""
    for item in c.items:
        if item.subscription_type is not SubscriptionType.IP_RANGE:
            continue
        for sold in await uow.ip_range_subscriptions.list_by_line_item(item.id):
            if sold.is_active:
                await uow.ip_range_subscriptions.set_active(sold.id, False, now)


async def _delete_on_host(deps: WorkerDeps, c: _Claimed) -> None:
    """Each VM off its host, with no transaction open (a refusal releases the lease)."""
    for vm in c.vms:
        if vm.id in c.clients:
            await delete_on_host(deps, c.clients[vm.id], vm)


async def _delete(deps: WorkerDeps, uow: UnitOfWork, c: _Claimed, now: datetime) -> None:
    """The delete step's transaction: subscription inactive, open IP ranges ended, each VM's
    addresses released and row deleted, history Deleted (§9.4 branch 2).

    Runs after the host deleted the VMs; unlike the reference (§13 item 24) a host that
    refuses the delete releases the claim, so it is retried on the next run, not forgotten.
    """
    await end_subscription(uow, c.sub, now)
    at = deps.clock.now()  # when it is recorded, not when the run began: see `_recorded`
    for vm in c.vms:
        text = f"VM {vm.id} was deleted: expired and exceeded grace period"
        await record_deleted(uow, vm, now, text, at=at)
    c.ended.extend(await end_pending(uow, c.sub.id, now))  # D24, in the deleting transaction


async def _delete_overtaken(deps: WorkerDeps, uow: UnitOfWork, c: _Claimed, now: datetime) -> None:
    """A payment completed while the host deleted the VMs (D24): the deletion happened, so it
    is recorded as one (addresses released, history Deleted, pending invoices ended), and the
    payment then restores each VM as it does one deleted before it came (`revive_paid`):
    placed as completion places it, un-deleted, to be built anew (SpawnVm after the commit),
    which the spawn announces as re-created empty. The subscription stays as the payment left
    it (paid, active). A VM with no place left (its offer withdrawn, no host of its region
    with room) stays deleted: the payments that overtook its deletion (paid since this run
    began, `_late`) become account credit without their time, the subscription is switched
    off with its IP ranges as `_delete` leaves it, and `c.credited` is told of after the
    commit. (A subscription holds one VM: `revive_paid` un-deletes all of its VMs.)"""
    at = deps.clock.now()  # when it is recorded, not when the run began
    for vm in c.vms:
        text = (
            f"VM {vm.id} was deleted: expired and exceeded grace period; a payment arrived "
            "while it was deleted, so it is re-created empty"
        )
        await record_deleted(uow, vm, now, text, at=at, overtaken_by_payment=True)
    c.ended.extend(await end_pending(uow, c.sub.id, now))
    late = await _late(uow, c.sub.id, now)
    for vm in c.vms:
        revival = await revive_paid(uow, vm, c.sub, late, now, c.region)
        if not revival.revived:
            if not revival.subscription.is_active:
                await uow.ip_range_subscriptions.deactivate_for_subscription(c.sub.id, now)
            c.credited.extend(revival.credited)
            c.unplaced.extend(v.id for v in c.vms)
            return


async def _paid_over(deps: WorkerDeps, uow: UnitOfWork, c: _Claimed, now: datetime) -> bool:
    """Whether a payment really overtook the deletion (D24), by the admin delete's rule
    (`_record_once`): the subscription is active, paid past the present moment, and
    Purchases/Renewals were paid since the run began (`_late`). A deletion no longer due for
    any other reason is recorded as a plain one: an admin switched the subscription off
    meanwhile (even after a payment came: the admin's word is the later one), moved its
    expiry within the grace, or gave time past now with no payment (the VM is gone from its
    host already; re-creating it empty is a payment's due, not an edit's). Reviving it would
    leave a row nothing ever builds (the spawn refuses an unpaid VM), or an empty VM nobody
    paid for, on a subscription the lifecycle no longer visits."""
    if not (c.sub.is_active and is_paid_now(c.sub, deps.clock.now())):
        return False
    return bool(await _late(uow, c.sub.id, now))


async def _late(uow: UnitOfWork, sub_id: int, since: datetime) -> list[SubscriptionPayment]:
    """The subscription's paid Purchases/Renewals paid since the run began (to the second, as
    times are stored): those that overtook the deletion. One paid before the claim would
    have kept the deletion from being claimed at all."""
    floor = since.replace(microsecond=0)
    tally = await uow.payments.paid_tally(sub_id)
    return [
        p
        for p in tally.paid
        if p.payment_type is not SubscriptionPaymentType.UPGRADE
        and p.paid_at is not None
        and p.paid_at >= floor
    ]


async def _delete_notices(deps: WorkerDeps, c: _Claimed, auto: bool, now: datetime) -> None:
    """N4 to the user, N8 to the admins for each deleted VM; no N4 when the VM was deleted
    before (`_vm_gone`): "not renewed within the grace period" would be false."""
    await cancel_ended(deps, c.ended)  # D24
    if _vm_gone(c) and not c.vms:
        log.info("subscription %s: its VM was deleted before; ended without a notice", c.sub.id)
        return
    n = messages.cancelled(c.subject, c.sub, c.descr, now)
    await deps.tell_user(c.sub.user_id, n.title, n.message)
    for vm in c.vms:
        n = messages.vm_deleted_admin(vm.id, c.sub.user_id, c.sub, now)
        await deps.tell_admins(n.title, n.message)


async def _nothing(deps: WorkerDeps, uow: UnitOfWork, c: _Claimed, now: datetime) -> None:
    return None


async def _silent(deps: WorkerDeps, c: _Claimed, auto: bool, now: datetime) -> None:
    return None


After = Callable[[WorkerDeps, _Claimed, bool, datetime], Awaitable[None]]


@attrs.frozen
class _Plan:
    """An action: its host call (outside any transaction, None: none), its database effect,
    what follows the commit, and the job each VM gets when a payment landed during the host
    call (the stopped VM is checked and started again, the deleted one rebuilt)."""

    effect: Effect
    after: After
    host: HostCall | None = None
    overtaken_job: type[CheckVm | SpawnVm] = CheckVm
    #: what is recorded when a payment overtook the host call, which happened all the same
    #: (the stop's history entry lets CheckVm start the VM again; the deletion is recorded
    #: and undone as a late payment undoes it, D24); None: nothing
    overtaken: Effect | None = None
    #: whether the action holds each VM's build lease (`spawn_lease`) through its host call,
    #: and waits for the next run while anything else holds one. A deletion: no spawn
    #: rebuilds the VM meanwhile, only to lose its row and addresses once the deletion is
    #: recorded. The expiry stop: every start (a build, a resize, an admin's or owner's
    #: start, the VM check's) judges "paid" under that lease, so none lands after the stop,
    #: which is claimed once per period (D15) and would not come again before the deletion.
    #: A VM not built yet has no host call, but a build under way holds its lease: the stop
    #: waits for it, and then stops on its host the VM the build started.
    holds_builds: bool = False
    #: whether a payment really overtook the host call, when the action is no longer due;
    #: False: it is recorded and told of as if still due (None: any reason counts)
    overtook: Check | None = None
    #: whether the action reads the subscription's VMs (ending add-ons does not: one
    #: statement per VM saved on every expiry)
    reads_vms: bool = True


PLAN: dict[LifecycleAction, _Plan] = {
    _A.EXPIRING_SOON_NOTICE: _Plan(_nothing, _notice),
    _A.AUTO_RENEW_ATTEMPT: _Plan(_nothing, _auto_renew),
    _A.STOP_ON_EXPIRY: _Plan(
        _stop, _stop_notices, _stop_on_host, CheckVm, _stop, holds_builds=True
    ),
    _A.DEACTIVATE_ADDONS: _Plan(_deactivate, _silent, reads_vms=False),
    _A.DELETE_AFTER_GRACE: _Plan(
        _delete,
        _delete_notices,
        _delete_on_host,
        SpawnVm,
        _delete_overtaken,
        holds_builds=True,
        overtook=_paid_over,
    ),
}


async def run_action(deps: WorkerDeps, due: DueAction, auto: bool, now: datetime) -> bool:
    """Claim and perform one due action; True when this call did it.

    Database-only actions claim and act in one transaction. Notices and the auto-renew
    payment follow the commit: at most once, so a wallet is never charged twice. Actions
    that call the host go through `_run_with_host`, which never holds a row lock (or any
    transaction) while the host works.
    """
    plan = PLAN[due.action]
    if plan.host is not None:
        return await _run_with_host(deps, plan, due, auto, now)
    async with deps.uow_factory() as uow:
        claimed = await _claim(deps, uow, due, auto, now)
        if claimed is None:
            return False
        await plan.effect(deps, uow, claimed, now)
        await uow.commit()
    await plan.after(deps, claimed, auto, now)
    return True


async def _release(deps: WorkerDeps, due: DueAction, token: str, c: _Claimed) -> None:
    """The action's leases given up after a failed step, in a transaction of their own,
    best effort: a failure is logged, never raised over the step's own error (the leases
    then lapse `host_lease` after their last renewal). Each is dropped only if it is still
    the one this worker took (its token): a lease another worker took over stays theirs."""
    try:
        async with deps.uow_factory() as uow:
            await _release_in(uow, due, token, c)
            await uow.commit()
    except Exception:
        log.exception("could not release the leases of %s; they lapse by themselves", due)


async def _release_in(uow: UnitOfWork, due: DueAction, token: str, c: _Claimed) -> None:
    """The action's lease and the build leases it holds, in the caller's transaction."""
    await uow.worker_leases.release(lease_name(due), token)
    for vm_id, build in c.builds.items():
        await uow.worker_leases.release(spawn_lease(vm_id), build)


async def _run_with_host(
    deps: WorkerDeps, plan: _Plan, due: DueAction, auto: bool, now: datetime
) -> bool:
    """Claim, call the host with no transaction open, record: three steps, done once.

    1. A short transaction under the row lock checks the action is still due and not yet
       done, and takes its worker lease; a second worker finds the lease and skips. A
       deletion or stop also takes each VM's build lease (`spawn_lease`), so no spawn
       rebuilds a VM its host is deleting and no start lands after the expiry stop; a VM
       being built, resized or started right now leaves the action to the next run.
    2. The host stops or deletes the VMs. A payment completing meanwhile is not held up.
       If the host fails, the leases are released and the action is retried next run.
    3. A second short transaction re-reads the subscription under its lock, claims the
       once-per-period mark (D15) and records the outcome; the leases go with it. If a
       payment landed during step 2, the stop or deletion already happened on the host,
       so it is recorded as such (`_Plan.overtaken`: a deletion is recorded and undone as
       a late payment undoes it, D24) and each VM gets a CheckVm (started again) or SpawnVm
       (re-created empty, and said so) job instead of the expiry notices; the subscription
       is not cancelled. If the recording fails, the leases are released too (best effort,
       `_release`) and the next run repeats the (idempotent) host call and records it.
    The leases are renewed while step 2 runs (`WorkerDeps.keep_leases`). A worker that dies
    between 1 and 3 leaves its lease; once `host_lease` has passed since its last renewal
    another worker takes it over and repeats the (idempotent) host call. With no VM on a
    host (none built, or none sold), step 1 claims and records at once, like `_claim`.
    """
    assert plan.host is not None
    async with deps.uow_factory() as uow:
        taken = await _take(deps, uow, due, auto, now)
        if taken is None:
            return False
        claimed, token = taken
        if token is None:
            await plan.effect(deps, uow, claimed, now)
        await uow.commit()
    if token is None:
        await plan.after(deps, claimed, auto, now)
        return True
    held = {lease_name(due): token} | {spawn_lease(i): b for i, b in claimed.builds.items()}
    try:
        async with deps.keep_leases(held):
            await plan.host(deps, claimed)
    except BaseException:
        await _release(deps, due, token, claimed)
        raise
    try:
        recorded = await under_region_lock(
            None,
            lambda region: _record(deps, plan, due, auto, now, claimed, token, region),
            exhausted=StorageBusy,
        )
    except BaseException:  # the host acted but the recording failed (its release rolled
        # back with it): the leases go now, so a start of a VM just paid for, or the retry
        # of this action on the next run, does not wait for their 15 minutes (r21 S2)
        await _release(deps, due, token, claimed)
        raise
    if recorded is None:
        return False
    final, now_due = recorded
    if now_due:
        await plan.after(deps, final, auto, now)
        return True
    log.info(
        "subscription %s was paid while its %s ran on the host; %s for its VMs",
        due.subscription_id,
        due.action.value,
        plan.overtaken_job.__name__,
    )
    await cancel_ended(deps, final.ended)  # D24: what the recorded deletion ended
    await tell_overtaken_credited(deps.queue, final.credited)
    for vm in final.vms:
        if vm.id not in final.unplaced:
            await deps.queue.send(plan.overtaken_job(vm_id=vm.id))
    return True


async def _record(
    deps: WorkerDeps,
    plan: _Plan,
    due: DueAction,
    auto: bool,
    now: datetime,
    claimed: _Claimed,
    token: str,
    region: int | None,
) -> tuple[_Claimed, bool] | None:
    """Step 3 of `_run_with_host`, one transaction: the claimed action as recorded and
    whether it was recorded as still due (also when no longer due but no payment overtook
    it, `_Plan.overtook`); None when another worker recorded it. With `region`, the
    lock of that region is taken after the subscription's (and the user's, as completion
    takes them): a payment that overtook a deletion places its VM under it (`revive_paid`,
    which raises `RegionMoved` for another region, and this runs again with that lock)."""
    async with deps.uow_factory() as uow:
        sub = await uow.subscriptions.get_for_update(due.subscription_id)
        if sub is not None and region is not None:
            await uow.users.lock(sub.user_id)
            await uow.regions.lock(region)
        vms = await _still_there(uow, claimed.vms) if sub is not None else []
        now_due = sub is not None and due in decide_lifecycle_actions(
            sub, now, deps.delete_after_days, auto
        )
        code = ACTION_CODES[due.action]
        recorded = sub is not None and await uow.lifecycle_marks.claim(
            sub.id, code, due.period, now
        )
        final = claimed
        if sub is not None and recorded:
            final = attrs.evolve(
                claimed, sub=sub, vms=vms, region=region, ended=[], credited=[], unplaced=[]
            )
            if not now_due and plan.overtook is not None:
                now_due = not await plan.overtook(deps, uow, final, now)
            if now_due:
                await plan.effect(deps, uow, final, now)
            elif plan.overtaken is not None:
                await plan.overtaken(deps, uow, final, now)
        await _release_in(uow, due, token, claimed)
        await uow.commit()
    return (final, now_due) if recorded else None


async def _still_there(uow: UnitOfWork, vms: Sequence[Vm]) -> list[Vm]:
    """The VMs re-read after the host call, those still on their line item and not deleted
    (read by id: the line items themselves are not read again)."""
    live = []
    for vm in vms:
        found = await uow.vms.get(vm.id)
        if (
            found is not None
            and not found.deleted
            and found.subscription_line_item_id == vm.subscription_line_item_id
        ):
            live.append(found)
    return live


#: subscriptions of one page handled at once: each action is a few short transactions whose
#: time is round trips and commit flushes, which overlap (and share group commits) when
#: several run together; the actions of one subscription stay in order (issue 10).
LIFECYCLE_CONCURRENCY = 8


async def _each(
    subs: Sequence[Subscription],
    handle: Callable[[Subscription], Awaitable[LifecycleReport]],
    limit: int,
) -> list[LifecycleReport]:
    """`handle` every subscription, at most `limit` at a time; the reports in `subs` order."""
    pending = iter(enumerate(subs))
    reports: list[LifecycleReport | None] = [None] * len(subs)

    async def lane() -> None:
        for index, sub in pending:
            reports[index] = await handle(sub)

    await asyncio.gather(*(lane() for _ in range(max(1, min(limit, len(subs))))))
    return [r for r in reports if r is not None]


class _Walk:
    """Pages of due subscriptions by keyset, each action of each run once (see below)."""

    def __init__(self, deps: WorkerDeps, report: LifecycleReport, now: datetime) -> None:
        self.deps = deps
        self.report = report
        self.now = now

    async def run(
        self,
        horizon: timedelta,
        *,
        since: datetime | None,
        after: tuple[datetime, int] | None,
        budget: int | None,
    ) -> tuple[datetime, int] | None:
        """Walk from `after`; the key to resume from when `budget` ran out, else None."""
        seen = 0
        while True:
            page = self.deps.due_page
            if budget is not None:
                page = min(page, budget - seen)
                if page <= 0:
                    return after
            async with self.deps.uow_factory() as uow:
                window = DueWindow(self.now, horizon, since=since, after=after)
                subs = await uow.subscriptions.list_due(window, page)
            for one in await _each(subs, self.subscription, LIFECYCLE_CONCURRENCY):
                self.report.due += one.due  # in walk order, whatever order they finished in
                self.report.done.extend(one.done)
                self.report.failed.extend(one.failed)
                self.report.undecided.extend(one.undecided)
            seen += len(subs)
            if len(subs) < page:
                return None
            last = subs[-1]
            assert last.expires is not None
            after = (last.expires, last.id)

    async def _can_auto_renew(self, sub: Subscription) -> bool:
        """Whether the wallet can be asked to renew `sub` before its expiry. An error (the
        user's row unreadable for a moment) is raised, not read as "no": that would claim the
        period's expiring-soon notice ("renew manually") and a later run, reading "yes", the
        auto-renewal too (its own mark), so the user paid by hand and the wallet paid again.
        The subscription is skipped for this run and decided again on the next (D15). A
        wallet string that can never be read (undecryptable) is the renewer's "no", not an
        error: the user gets the expiring-soon notice once (`NwcAutoRenewer.can_attempt`)."""
        if not sub.auto_renewal_enabled or sub.expires is None or sub.expires <= self.now:
            return False
        return await self.deps.auto_renewer.can_attempt(sub)

    async def subscription(self, sub: Subscription) -> LifecycleReport:
        """The due actions of one subscription, in order; what they did."""
        deps, now = self.deps, self.now
        report = LifecycleReport()
        try:
            auto = await self._can_auto_renew(sub)
            actions = decide_lifecycle_actions(sub, now, deps.delete_after_days, auto)
        except Exception:  # one bad row (e.g. an interval off the calendar) stops no other
            log.exception(
                "lifecycle of subscription %s: cannot decide its actions; skipped", sub.id
            )
            report.undecided.append(sub.id)
            return report
        for due in actions:
            report.due += 1
            try:
                if await run_action(deps, due, auto, now):
                    report.done.append(due)
            except StorageBusy as err:  # transient, no bug: retried on the next run
                log.warning(
                    "lifecycle %s of subscription %s: database busy (%s); retried next run",
                    due.action.value,
                    sub.id,
                    err.__cause__,
                )
                report.failed.append(due)
            except Exception:
                log.exception("lifecycle %s of subscription %s failed", due.action.value, sub.id)
                report.failed.append(due)
        return report


async def check_subscriptions(deps: WorkerDeps) -> LifecycleReport:
    """One lifecycle run over the due subscriptions (§9.3), safe to run often and in parallel.

    Two walks over the expiry index, in pages of `due_page` by a keyset cursor, so the cost
    follows the due work and no page re-reads the ones before it:
    1. the subscriptions not yet expired but inside the expiring-soon lead (notices and
       auto-renewals) — all of them, first, so a backlog never delays a notice;
    2. the expired ones (stop, end add-ons, delete after grace), oldest first, at most
       `expired_budget` per run: a run ends in bounded time, and the next one resumes after
       the last subscription this one reached (`deps.backlog`), starting from the oldest
       again once the end was reached. So a backlog of any size is walked completely.
    For each, `decide_lifecycle_actions` names the actions due now and each is claimed once
    per period (D15): running every 30 s, restarting, or two workers at once repeats
    nothing. A failing subscription is logged and retried on a later run; the others go on,
    also when its actions cannot even be decided (a stored row the rules refuse).
    """
    now = deps.clock.now()
    report = LifecycleReport()
    walk = _Walk(deps, report, now)
    await walk.run(EXPIRING_SOON_LEAD, since=now, after=None, budget=None)
    resume = deps.backlog.after
    deps.backlog.after = await walk.run(
        timedelta(0), since=None, after=resume, budget=deps.expired_budget
    )
    if deps.backlog.after is not None:
        log.info(
            "lifecycle: expired backlog continues next run after subscription %s",
            deps.backlog.after[1],
        )
    log.info(
        "lifecycle run at %s: %d due, %d done, %d failed",
        now.isoformat(),
        report.due,
        len(report.done),
        len(report.failed),
    )
    return report
