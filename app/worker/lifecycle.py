"""check_subscriptions: each due lifecycle action once per subscription period (§9.4, D15, D16)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

import attrs

from app.worker import messages
from app.worker.context import WorkerDeps
from app.worker.pending import cancel_ended, end_pending
from app.worker.provisioning import delete_in, history, stop_in
from domain.enums import SubscriptionType, VmHistoryActionType
from domain.lifecycle import (
    EXPIRING_SOON_LEAD,
    DueAction,
    LifecycleAction,
    decide_lifecycle_actions,
    deletion_due_at,
    grace_period,
    subscription_age,
)
from domain.model import LineItem, Subscription, SubscriptionPayment, Vm
from ports.storage import UnitOfWork
from ports.vmhost import VmRunningState, VmRunState

log = logging.getLogger("lnvps.worker.lifecycle")

_A = LifecycleAction
#: `lifecycle_mark.action` codes (a SMALLINT column); never renumber a stored code.
ACTION_CODES: dict[LifecycleAction, int] = {
    _A.EXPIRING_SOON_NOTICE: 1,
    _A.AUTO_RENEW_ATTEMPT: 2,
    _A.STOP_ON_EXPIRY: 3,
    _A.DEACTIVATE_ADDONS: 4,
    _A.DELETE_AFTER_GRACE: 5,
}


@attrs.define
class LifecycleReport:
    """What one run did: actions performed (claimed and committed) and failures."""

    due: int = 0
    done: list[DueAction] = attrs.field(factory=list)
    failed: list[DueAction] = attrs.field(factory=list)


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


async def _claim(
    deps: WorkerDeps, uow: UnitOfWork, due: DueAction, auto: bool, now: datetime
) -> _Claimed | None:
    """Lock the subscription, check the action is still due, and claim it (D15).

    The row lock (taken before the mark) serialises the action with a payment completing
    at the same moment: either the payment lands first and the re-read shows a new period
    (nothing is due), or the action commits first and the payment's SpawnVm finds the VM
    stopped by expiry and starts it again. The mark is in the same transaction as the
    action's effects, so a rolled-back action leaves no mark and is retried next run.
    """
    sub = await uow.subscriptions.get_for_update(due.subscription_id)
    if sub is None or due not in decide_lifecycle_actions(sub, now, deps.delete_after_days, auto):
        return None
    if not await uow.lifecycle_marks.claim(sub.id, ACTION_CODES[due.action], due.period, now):
        return None
    items = await uow.line_items.list_by_subscription(sub.id)
    vms = []
    for item in items:
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
        descr=messages.describe(sub, items),
        hint=messages.renew_hint(deps.public_url, sub, vm_id),
    )


async def _notice(deps: WorkerDeps, c: _Claimed, auto: bool, now: datetime) -> None:
    """N1 (no renewal possible) — claimed and committed before sending: at most once."""
    n = messages.expiring_soon(c.subject, c.sub, c.descr, c.hint)
    await deps.tell_user(c.sub.user_id, n.title, n.message)


async def _auto_renew(deps: WorkerDeps, c: _Claimed, auto: bool, now: datetime) -> None:
    """Pay the renewal from the user's wallet (N2), or say it failed (N3); at most once."""
    try:
        await deps.auto_renewer.attempt(c.sub)
    except Exception as err:
        reason = getattr(err, "message", None) or str(err) or type(err).__name__
        log.warning("auto-renewal of subscription %s failed: %s", c.sub.id, reason)
        n = messages.expiring_soon(c.subject, c.sub, c.descr, c.hint, failure=reason)
    else:
        n = messages.auto_renewed(c.subject, c.descr, now)
    await deps.tell_user(c.sub.user_id, n.title, n.message)


def _deadline(deps: WorkerDeps, sub: Subscription) -> tuple[int, datetime]:
    age = subscription_age(sub)
    due_at = deletion_due_at(sub, deps.delete_after_days)
    assert age is not None and due_at is not None
    return grace_period(age, deps.delete_after_days).days, due_at


Effect = Callable[[WorkerDeps, UnitOfWork, _Claimed, datetime], Awaitable[None]]


async def _stop(deps: WorkerDeps, uow: UnitOfWork, c: _Claimed, now: datetime) -> None:
    """Stop each VM on its host, then history Expired (§7.3 on_expired)."""
    for vm in c.vms:
        await stop_in(deps, uow, vm)
        await uow.vm_history.add(
            history(vm.id, VmHistoryActionType.EXPIRED, now, f"VM {vm.id} expired")
        )


async def _stop_notices(deps: WorkerDeps, c: _Claimed, auto: bool, now: datetime) -> None:
    """N6 per stopped VM; N5 when the subscription sells anything besides VMs."""
    days, deadline = _deadline(deps, c.sub)
    assert c.sub.expires is not None
    for vm in c.vms:
        n = messages.vm_expired(vm.id, c.sub.expires, days, deadline, c.hint)
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


async def _delete(deps: WorkerDeps, uow: UnitOfWork, c: _Claimed, now: datetime) -> None:
    """Cancel: subscription inactive, open IP ranges ended, each VM deleted (§9.4 branch 2).

    Unlike the reference (§13 item 24) a host that refuses the delete rolls the whole
    action back, mark included, so it is retried on the next run instead of forgotten.
    """
    await uow.subscriptions.update(attrs.evolve(c.sub, is_active=False))
    await uow.ip_range_subscriptions.deactivate_for_subscription(c.sub.id, now)
    for vm in c.vms:
        await delete_in(deps, uow, vm)
        text = f"VM {vm.id} was deleted: expired and exceeded grace period"
        await uow.vm_history.add(history(vm.id, VmHistoryActionType.DELETED, now, text))
    c.ended.extend(await end_pending(uow, c.sub.id, now))  # D24, in the deleting transaction


async def _delete_notices(deps: WorkerDeps, c: _Claimed, auto: bool, now: datetime) -> None:
    """N4 to the user, N8 to the admins for each deleted VM."""
    await cancel_ended(deps, c.ended)  # D24
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
#: per action: the effect inside the claiming transaction, then what follows its commit.
PLAN: dict[LifecycleAction, tuple[Effect, After]] = {
    _A.EXPIRING_SOON_NOTICE: (_nothing, _notice),
    _A.AUTO_RENEW_ATTEMPT: (_nothing, _auto_renew),
    _A.STOP_ON_EXPIRY: (_stop, _stop_notices),
    _A.DEACTIVATE_ADDONS: (_deactivate, _silent),
    _A.DELETE_AFTER_GRACE: (_delete, _delete_notices),
}


async def run_action(deps: WorkerDeps, due: DueAction, auto: bool, now: datetime) -> bool:
    """Claim and perform one due action; True when this call did it.

    Host and database effects run inside the claiming transaction and commit together:
    a failure rolls back the mark too, so the action is retried next run (at least once,
    and host stops and deletes are idempotent). Notices and the auto-renew payment follow
    the commit: at most once, so a wallet is never charged twice.
    """
    effect, after = PLAN[due.action]
    async with deps.uow_factory() as uow:
        claimed = await _claim(deps, uow, due, auto, now)
        if claimed is None:
            return False
        await effect(deps, uow, claimed, now)
        await uow.commit()
    await after(deps, claimed, auto, now)
    return True


async def check_subscriptions(deps: WorkerDeps) -> LifecycleReport:
    """One lifecycle run over the due subscriptions (§9.3), safe to run often and in parallel.

    `list_due` reads only active subscriptions expiring within the expiring-soon lead or
    already expired (an indexed range), so the cost follows the due work. For each,
    `decide_lifecycle_actions` names the actions due now and each is claimed once per
    period (D15): running every 30 s, restarting, or two workers at once repeats nothing.
    A failing subscription is logged and retried next run; the others go on.
    """
    now = deps.clock.now()
    report = LifecycleReport()
    async with deps.uow_factory() as uow:
        due_subs = await uow.subscriptions.list_due(now, EXPIRING_SOON_LEAD, deps.due_limit)
    if len(due_subs) >= deps.due_limit:
        log.warning("lifecycle: %d subscriptions due, only the first are handled", len(due_subs))
    for sub in due_subs:
        auto = False
        if sub.auto_renewal_enabled and sub.expires is not None and sub.expires > now:
            try:
                auto = await deps.auto_renewer.can_attempt(sub)
            except Exception:
                log.exception("cannot tell whether subscription %s can auto-renew", sub.id)
        for due in decide_lifecycle_actions(sub, now, deps.delete_after_days, auto):
            report.due += 1
            try:
                if await run_action(deps, due, auto, now):
                    report.done.append(due)
            except Exception:
                log.exception("lifecycle %s of subscription %s failed", due.action.value, sub.id)
                report.failed.append(due)
    return report
