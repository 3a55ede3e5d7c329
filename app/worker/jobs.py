"""The worker's job handlers (§9.1) and a Notifier that queues its notices as jobs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from app.billing.completion import complete_payment
from app.billing.credit_release import release_expired_credit
from app.billing.lapsed_orders import LapsedOrders
from app.billing.order_locks import under_region_lock
from app.billing.overtaken import tell_overtaken_credited
from app.billing.upgrades import apply_upgrade
from app.worker import messages
from app.worker.context import WorkerDeps
from app.worker.dispatch import JobHandlers
from app.worker.email_verification import send_email_verification
from app.worker.host_urls import report_clear_text_hosts
from app.worker.lifecycle import check_subscriptions
from app.worker.os_images import download_os_images
from app.worker.pending import cancel_ended, end_pending
from app.worker.provisioning import (
    check_vm,
    delete_on_host,
    facts_of,
    full_info,
    history,
    is_paid_now,
    paid_now,
    record_deleted,
    release_lease,
    revive_paid,
    spawn_lease,
    spawn_or_check,
    stopped_by_expiry,
)
from app.worker.subscription_end import end_if_no_vm_left
from app.worker.unpaid_subscriptions import cancel_never_paid_subscriptions
from app.worker.vmcheck import check_vms
from domain.enums import SubscriptionPaymentType, VmHistoryActionType
from domain.errors import DomainError
from domain.events import PaymentCompleted
from domain.model import Subscription, SubscriptionPayment, Vm
from domain.upgrade import AS_RECORDED, UpgradeConfig, upgrade_superseded
from ports.failures import RetryableError
from ports.jobs import (
    CheckSubscriptions,
    CheckVm,
    CheckVms,
    DeleteVm,
    DownloadOsImages,
    ProcessVmUpgrade,
    SendAdminNotification,
    SendEmailVerification,
    SendNotification,
    SpawnVm,
    StartVm,
    StopVm,
)
from ports.notify import Notifier
from ports.queue import WorkQueue
from ports.storage import StorageBusy, UnitOfWork
from ports.vmhost import FullVmInfo, VmHost, VmHostError

log = logging.getLogger("lnvps.worker.jobs")


class QueuedNotifier:
    """A Notifier that sends `SendNotification` / `SendAdminNotification` jobs (§9.1).

    Delivery then happens in the worker with the real notifier; a transient failure fails
    the (non-skippable) job, and the queue delivers it again.
    """

    def __init__(self, queue: WorkQueue) -> None:
        self._queue = queue

    async def notify_user(self, user_id: int, title: str, message: str) -> None:
        await self._queue.send(SendNotification(user_id=user_id, message=message, title=title))

    async def notify_admins(self, title: str, message: str) -> None:
        await self._queue.send(SendAdminNotification(message=message, title=title))


async def process_vm_upgrade(deps: WorkerDeps, vm_id: int, cfg: UpgradeConfig) -> None:
    """ProcessVmUpgrade (§8.4): records (idempotent), then stop, resize and start; N9.

    The records are updated in the payment's booking transaction already, so this step is
    a no-op then (`AS_RECORDED`, the VM check's re-send, skips it). Whoever applies the
    records (the booking, or this step for a job of the reference's) marks the VM
    `resize_requested` in the same transaction; the host work runs only while that mark is
    set, and once the host has the size the mark is cleared if it still holds the value
    read with the records (compare-and-clear: an upgrade booked meanwhile keeps its mark,
    and its own job resizes again). So a job delivered again after its resize (its ack
    lost, claimed by a second worker, the VM check's re-send of a late job) finds no mark
    and does nothing: the paid VM is not stopped again, nor the user told twice. A job
    lost before that is sent again by the VM check (`vmcheck.resend_lost_resizes`).

    The host work holds the VM's lease (`spawn_lease`), as a spawn and a deletion do: two
    deliveries never resize at once (the second waits: `VmBusy`, delivered again), nor
    does a resize race a spawn that read the old size. A VM never built on a host (or
    deleted) only gets its records and the mark cleared: the spawn builds it with the new
    size. A stop failure is ignored (§8.4 step 2). A refused config that a later upgrade in
    the records overtook (`upgrade_superseded`) is no failure: the job then does nothing,
    the newer one resizes.
    """
    if cfg != AS_RECORDED:
        try:
            await apply_upgrade(deps.uow_factory, deps.clock, vm_id=vm_id, cfg=cfg)
        except DomainError as err:  # permanent: a retry would fail the same way
            if await _superseded(deps, vm_id, cfg):
                log.info("VM %s: upgrade %s superseded by a later one", vm_id, cfg.to_json())
                return
            log.error("upgrade of VM %s cannot be applied: %s", vm_id, err.message)
            await deps.tell_admins(f"VM {vm_id} Upgrade Failed", f"VM #{vm_id}: {err.message}")
            return
    claim = await _claim_resize(deps, vm_id)
    if claim is None:
        return
    vm, token = claim.vm, claim.token
    try:
        if vm.is_provisioned:
            async with deps.keep_leases({spawn_lease(vm_id): token}):
                refused = await _resize_on_host(deps, claim.client, claim.info)
            if refused is not None:
                await _resize_given_up(deps, vm, refused)
                return
        await _resized(deps, vm)
    finally:
        await release_lease(deps, spawn_lease(vm_id), token)
    n = messages.vm_upgraded(claim.facts, vm_id, deps.clock.now())
    await deps.tell_user(vm.user_id, n.title, n.message)


@attrs.frozen(kw_only=True)
class _Resize:
    """What the claiming read of a resize hands to the host step."""

    vm: Vm
    info: FullVmInfo
    facts: messages.VmFacts
    client: VmHost
    token: str


async def _claim_resize(deps: WorkerDeps, vm_id: int) -> _Resize | None:
    """The VM's lease and what its resize needs, or None when there is nothing to resize:
    the VM gone (its mark cleared), or its mark cleared already (resized by an earlier
    delivery). A VM whose lease another worker holds (a spawn, a deletion, another delivery
    resizing it) fails the job (`VmBusy`), delivered again."""
    now = deps.clock.now()
    async with deps.uow_factory() as uow:
        # the lease first: a holder that committed its work is seen by the reads below
        token = await uow.worker_leases.take(spawn_lease(vm_id), now, now - deps.host_lease)
        vm = await uow.vms.get(vm_id)
        if vm is None or vm.resize_requested is None:
            log.info("VM %s: no resize outstanding; the job does nothing", vm_id)
            return None  # nothing committed: no lease kept
        if not vm.deleted:
            if token is None:
                raise VmBusy(vm_id, "resized")
            info = await full_info(uow, vm, tuple(await uow.ip_assignments.list_by_vm(vm_id)))
            facts = await facts_of(uow, info)
            _, client = await deps.host_of(uow, vm.host_id)
            await uow.commit()
            return _Resize(vm=vm, info=info, facts=facts, client=client, token=token)
    # nothing to resize: a revived VM is spawned at its records' size
    await _resized(deps, vm)
    return None


async def _resize_on_host(deps: WorkerDeps, client: VmHost, info: FullVmInfo) -> VmHostError | None:
    """Stop, resize and (paid: an expired VM stays stopped until renewed) start the VM;
    the host's fatal refusal of the resize is returned, a transient failure raised.

    Whether it is paid is read again right before the start (`_paid_for_start`), under the
    VM's lease this job holds, which the expiry stop takes too: a paid time that ended while
    the host resized leaves the VM stopped, and the lifecycle's stop (waiting for the lease)
    records the expiry; a start here can never follow that stop, which is not repeated.

    A failed resize still starts a paid VM again: nothing else would (the VM check only
    starts a VM its expiry stopped), and the VM check's re-send of the resize would stop it
    again. That start's own failure is logged; the resize error is what counts.
    """
    vm = info.vm
    try:
        await client.stop_vm(vm)
    except VmHostError as err:
        log.warning("stop before upgrading VM %s failed: %s", vm.id, err.message)
    try:
        await deps.retry.call(f"resize VM {vm.id}", lambda: client.resize_vm(info))
    except Exception as err:
        if await _paid_for_start(deps, vm):
            await _start_again(deps, client, vm)
        if isinstance(err, VmHostError) and not err.transient:
            return err
        raise
    if await _paid_for_start(deps, vm):
        await deps.retry.call(f"start VM {vm.id}", lambda: client.start_vm(vm))
    return None


async def _paid_for_start(deps: WorkerDeps, vm: Vm) -> bool:
    """Whether the resized VM may be started: its subscription, read now, is paid. If not,
    the VM stays stopped and, unless its expiry stop is its last power event already, a
    history entry Expired says why: a renewal completing before the lifecycle's stop is
    recorded then starts it again (the VM check starts a paid VM its expiry stopped)."""
    async with deps.uow_factory() as uow:
        if await paid_now(deps, uow, vm):
            return True
        if not await stopped_by_expiry(uow, vm.id):
            text = f"VM {vm.id} expired during its upgrade; left stopped"
            await uow.vm_history.add(
                history(vm.id, VmHistoryActionType.EXPIRED, deps.clock.now(), text)
            )
            await uow.commit()
    log.info("VM %s: its paid time is over; not started after its upgrade", vm.id)
    return False


async def _start_again(deps: WorkerDeps, client: VmHost, vm: Vm) -> None:
    """Start a paid VM whose resize failed; a failure is only logged (the resize's counts)."""
    try:
        await deps.retry.call(f"start VM {vm.id}", lambda: client.start_vm(vm))
    except Exception:
        log.exception("starting VM %s again after its failed resize failed", vm.id)


async def _resize_given_up(deps: WorkerDeps, vm: Vm, err: VmHostError) -> None:
    """A resize the host refused for good (a fatal error: trying again fails the same way).

    The mark is cleared (compare-and-clear), so neither the queue nor the VM check's
    re-send stops the VM again for it, and the admins are told by the job that cleared it:
    once per booked resize, however often the job is delivered. The records keep the paid
    size; the host must be resized by hand.
    """
    log.error("resize of VM %s failed for good: %s", vm.id, err.message)
    if vm.resize_requested is None:  # never: the job resizes only while the VM is marked
        return
    async with deps.uow_factory() as uow:
        cleared = await uow.vms.settle_resize(vm.id, vm.resize_requested, None)
        await uow.commit()
    if cleared:
        n = messages.resize_failed(vm.id, err.message)
        await deps.tell_admins(n.title, n.message)


async def _superseded(deps: WorkerDeps, vm_id: int, cfg: UpgradeConfig) -> bool:
    """Whether a refused upgrade was overtaken by a later one already in the records: the
    newer job (or the VM check's re-send) resizes the host, so this one leaves it alone."""
    async with deps.uow_factory() as uow:
        vm = await uow.vms.get(vm_id)
        if vm is None or vm.custom_template_id is None:
            return False
        recorded = await uow.custom_templates.get(vm.custom_template_id)
    return recorded is not None and upgrade_superseded(recorded, cfg)


async def _resized(deps: WorkerDeps, vm: Vm) -> None:
    """Clear `resize_requested` if it still holds what was read with the records resized."""
    if vm.resize_requested is None:
        return
    async with deps.uow_factory() as uow:
        cleared = await uow.vms.settle_resize(vm.id, vm.resize_requested, None)
        await uow.commit()
    if not cleared:  # a newer upgrade was booked meanwhile: its own job (or a re-send) follows
        log.info("VM %s: a newer upgrade is pending; its resize mark stays", vm.id)


class VmBusy(RetryableError):
    """An admin delete or start, or a resize, of a VM whose lease another worker holds (it
    builds, deletes, resizes or starts the VM right now, or stops it at its expiry): the
    job fails and is delivered again, when the other worker is done (a skippable one, an
    admin's start, is dropped: see `power_by_admin`)."""

    def __init__(self, vm_id: int, doing: str = "deleted") -> None:
        message = (
            f"VM {vm_id} is being built, resized, started, stopped or deleted by another "
            f"worker; not {doing} now, retried"
        )
        super().__init__(message, transient=True)


def _asked_at(job: DeleteVm) -> datetime | None:
    """When the admin asked for the deletion (None: a job without the time, the reference's)."""
    return None if job.requested is None else datetime.fromtimestamp(job.requested, UTC)


async def _recorded(uow: UnitOfWork, job: DeleteVm) -> bool:
    """Whether the deletion this job asks for is recorded already: a Deleted entry among the
    VM's latest history carrying its `request` id (a second delivery of it), or made since
    it was asked for (another click's, or the lifecycle's): a VM a payment restored since is
    not deleted again. A job with neither (the reference's) relies on the deleted flag."""
    if job.request is None and job.requested is None:
        return False
    asked = _asked_at(job)
    page = await uow.vm_history.list_by_vm(job.vm_id, 50)
    return any(
        e.action_type is VmHistoryActionType.DELETED
        and (
            (job.request is not None and (e.metadata or {}).get("request") == job.request)
            or (asked is not None and e.timestamp >= asked)
        )
        for e in page.items
    )


_SECOND = timedelta(seconds=1)


async def _paid_rows(uow: UnitOfWork, subscription_id: int) -> list[SubscriptionPayment]:
    """The subscription's paid Purchase/Renewal payments, the kinds whose completion
    restores a deleted VM."""
    tally = await uow.payments.paid_tally(subscription_id)
    return [p for p in tally.paid if p.payment_type is not SubscriptionPaymentType.UPGRADE]


async def _paid(uow: UnitOfWork, subscription_id: int, since: datetime | None) -> set[bytes]:
    """Ids of the subscription's paid Purchase/Renewal payments (`_paid_rows`) paid after the
    second `since`, when given: times are kept to the second, and one paid in the second
    the deletion was asked for counts as paid before it."""
    return {
        p.id
        for p in await _paid_rows(uow, subscription_id)
        if since is None or (p.paid_at is not None and p.paid_at >= since + _SECOND)
    }


async def delete_by_admin(deps: WorkerDeps, job: DeleteVm) -> None:
    """DeleteVm (§9.1): delete pipeline, history Deleted with admin metadata, both notices.
    The subscription ends in the recording transaction (`end_if_no_vm_left`): switched off
    with its IP ranges, as the grace deletion leaves it, so the lifecycle neither renews it
    nor later tells the user it was not renewed.

    The host deletes the VM outside any transaction; the rows are then updated under the
    subscription's lock, once (a second delivery finds the VM deleted and stops there).
    While the host deletes it the job holds the VM's build lease (`spawn_lease`): no spawn
    (a payment's, the VM check's) rebuilds it meanwhile, only to lose its row and address
    once the deletion is recorded; a VM being built right now fails the job, delivered again.

    A Purchase or Renewal completing during the host call found the VM live and was booked
    as a plain renewal; the deletion is recorded all the same (addresses released, history
    Deleted, pending invoices ended, D24) and then undone as that payment undoes a deletion
    it comes after: the VM is un-deleted and SpawnVm re-creates it empty, which the spawn
    says to the user and the admins.
    """
    vm_id = job.vm_id
    now = deps.clock.now()
    async with deps.uow_factory() as uow:
        # the lease first: a spawn that held it has committed what it built (its last step
        # runs under the lease), so the reads below see its MAC and the host call removes it
        token = await uow.worker_leases.take(spawn_lease(vm_id), now, now - deps.host_lease)
        vm = await uow.vms.get(vm_id)
        if vm is None or vm.deleted or await _recorded(uow, job):
            return  # nothing committed: no lease kept
        if token is None:
            raise VmBusy(vm_id)
        sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
        client = (await deps.host_of(uow, vm.host_id))[1] if vm.is_provisioned else None
        # what was paid before the deletion: since it was asked for, as the job says (the
        # same on every delivery); a job without the time compares this delivery's reads
        asked = _asked_at(job)
        paid_before = set() if sub is None or asked is not None else await _paid(uow, sub.id, None)
        await uow.commit()
    try:
        if client is not None:  # with no transaction open (a slow host holds up nobody)
            async with deps.keep_leases({spawn_lease(vm_id): token}):
                await delete_on_host(deps, client, vm)
        recorded = await _record_and_revive(deps, job, vm_id, sub, token, paid_before, now)
    except BaseException:  # the lease is released with the recording, else here: a failed
        # host call or recording must not keep the VM busy for the lease's 15 minutes
        await release_lease(deps, spawn_lease(vm_id), token)
        raise
    if recorded is None:
        return  # another delivery of the job recorded it
    await cancel_ended(deps, recorded.ended)
    n = messages.vm_deleted_by_admin(vm_id, job.reason, now)
    await deps.tell_user(recorded.vm.user_id, n.title, n.message)
    await deps.tell_admins(n.title, n.message)
    await tell_overtaken_credited(deps.queue, recorded.credited)
    if recorded.revived:
        log.info("VM %s was paid for while an admin deleted it; re-created (D24)", vm_id)
        await deps.queue.send(SpawnVm(vm_id=vm_id))


async def _record_and_revive(
    deps: WorkerDeps,
    job: DeleteVm,
    vm_id: int,
    sub: Subscription | None,
    token: str,
    paid_before: set[bytes],
    now: datetime,
) -> _Recorded | None:
    """The admin delete's recording transaction: the VM as it was, the pending payments it
    ended and whether a payment made during the deletion brought the VM back; None when it
    was recorded already (another delivery, another click). Run again under the lock of
    its host's region when a payment must place it back (`revive_paid`, `RegionMoved`)."""
    return await under_region_lock(
        None,
        lambda region: _record_once(deps, job, vm_id, sub, token, paid_before, now, region),
        exhausted=StorageBusy,
    )


@attrs.frozen
class _Recorded:
    vm: Vm
    ended: list[SubscriptionPayment]
    revived: bool
    credited: tuple[PaymentCompleted, ...] = ()


async def _record_once(
    deps: WorkerDeps,
    job: DeleteVm,
    vm_id: int,
    sub: Subscription | None,
    token: str,
    paid_before: set[bytes],
    now: datetime,
    region: int | None,
) -> _Recorded | None:
    async with deps.uow_factory() as uow:
        # D24: the subscription lock first, in the order completion takes its locks
        # (subscription, payments, VM), so a payment completing meanwhile cannot deadlock; as
        # the first statement it makes the re-read see a deletion that a concurrent DeleteVm
        # (a double click, two workers) committed while this one waited
        locked = None if sub is None else await uow.subscriptions.get_for_update(sub.id)
        if locked is not None and region is not None:  # then user and region, as completion
            await uow.users.lock(locked.user_id)
            await uow.regions.lock(region)
        current = await uow.vms.get(vm_id)
        await uow.worker_leases.release(spawn_lease(vm_id), token)
        if current is None or current.deleted or await _recorded(uow, job):
            await uow.commit()
            return None
        # stamped when recorded (after the host call): a deletion recorded after a later
        # click is one that click asked for (`_recorded`)
        await _record_admin_delete(uow, job, current, deps.clock.now())
        ended = [] if locked is None else await end_pending(uow, locked.id, now)  # D24
        revival = None
        # a payment that bought time (not one booked as credit, nor an unpaid order's)
        if locked is not None and locked.is_active and is_paid_now(locked, now):
            asked = _asked_at(job)
            late = await _paid(uow, locked.id, asked) - paid_before
            if late:  # paid while the host deleted it: restored as a later payment would be
                payments = [p for p in await _paid_rows(uow, locked.id) if p.id in late]
                revival = await revive_paid(uow, current, locked, payments, now, region)
        if locked is not None:  # not renewable now: ended, as the grace deletion ends it
            await end_if_no_vm_left(uow, locked.id, now)
        await uow.commit()
    if revival is None:
        return _Recorded(current, ended, False)
    return _Recorded(current, ended, revival.revived, revival.credited)


async def _record_admin_delete(uow: UnitOfWork, job: DeleteVm, vm: Vm, now: datetime) -> None:
    """The database half of an admin delete: addresses released, row deleted, history
    Deleted with the admin's metadata."""
    text = f"VM {vm.id} was deleted by an administrator"
    meta: dict[str, Any] = {"admin_action": True}
    if job.admin_user_id is not None:
        meta["admin_user_id"] = job.admin_user_id
    if job.reason:
        meta["reason"] = job.reason
    if job.request is not None:
        meta["request"] = job.request
    await record_deleted(uow, vm, now, text, **meta)


class VmNotRunnable(DomainError):
    """An admin start/stop of a deleted VM, or a start of an expired one (§9.1)."""


async def power_by_admin(deps: WorkerDeps, job: StartVm | StopVm) -> None:
    """StartVm / StopVm (§9.1): host start or stop, history Started/Stopped, both notices.

    A deleted VM is refused, and so is starting one whose paid time is over ("Cannot
    start expired VM"); both jobs are skippable, so a refusal is dropped (and logged).

    A start holds the VM's lease (`spawn_lease`) from that check until its history entry
    is recorded, as the expiry stop holds it during its host call: the paid time is judged
    under the lease, so a start never lands after the period's stop (which is not repeated)
    and leaves an expired VM running; a stop of a period ending meanwhile waits for it. A VM
    whose lease another worker holds fails the job (`VmBusy`), dropped and logged as a
    refusal is: nothing is lost, since what holds it starts a paid VM itself (a build, a
    resize, another start) or stops an expired one (the expiry stop).
    """
    vm_id, start = job.vm_id, isinstance(job, StartVm)
    now = deps.clock.now()
    token = None
    async with deps.uow_factory() as uow:
        if start:  # the lease first: what its last holder committed is seen by the reads
            token = await uow.worker_leases.take(spawn_lease(vm_id), now, now - deps.host_lease)
        vm = await uow.vms.get(vm_id)
        if vm is None or vm.deleted:
            raise VmNotRunnable(f"VM {vm_id} is deleted")  # nothing committed: no lease kept
        if start:
            if not await paid_now(deps, uow, vm):
                log.info("admin start of VM %s refused: its paid time is over", vm_id)
                raise VmNotRunnable("Cannot start expired VM")
            if token is None:
                raise VmBusy(vm_id, "started")
        _, client = await deps.host_of(uow, vm.host_id)
        await uow.commit()
    op = client.start_vm if start else client.stop_vm
    verb = "started" if start else "stopped"
    kind = VmHistoryActionType.STARTED if start else VmHistoryActionType.STOPPED
    meta: dict[str, Any] = {"admin_action": True}
    if job.admin_user_id is not None:
        meta["admin_user_id"] = job.admin_user_id
    if job.reason:
        meta["reason"] = job.reason
    held = {} if token is None else {spawn_lease(vm_id): token}
    try:
        async with deps.keep_leases(held):
            what = f"admin {'start' if start else 'stop'} of VM {vm_id}"
            await deps.retry.call(what, lambda: op(vm))
        async with deps.uow_factory() as uow:  # recorded under the lease: before a later stop's
            text = f"VM {vm_id} was {verb} by an administrator"
            await uow.vm_history.add(history(vm_id, kind, now, text, **meta))
            if token is not None:
                await uow.worker_leases.release(spawn_lease(vm_id), token)
            await uow.commit()
    except BaseException:
        if token is not None:
            await release_lease(deps, spawn_lease(vm_id), token)
        raise
    title = f"[VM{vm_id}] {verb.title()} by Admin"
    body = f"VM #{vm_id} was {verb} by an administrator on {messages.when(now)}."
    await deps.tell_user(vm.user_id, title, body)
    await deps.tell_admins(title, body)


class _Coalesce:
    """Skips a periodic check started less than `min_gap` after the previous one (§9.2).

    After a stall the scheduler's jobs pile up; running each would repeat a full scan for
    nothing. Skipping is safe: every lifecycle action is claimed per period anyway.
    """

    def __init__(self, deps: WorkerDeps, min_gap: timedelta) -> None:
        self._deps = deps
        self._gap = min_gap
        self._last: dict[str, datetime] = {}

    def due(self, kind: str) -> bool:
        now = self._deps.clock.now()
        last = self._last.get(kind)
        if last is not None and now - last < self._gap and now >= last:
            log.debug("%s ran %s ago; skipped", kind, now - last)
            return False
        self._last[kind] = now
        return True


class WorkerJobs:
    """The worker's job handlers, their dependencies injected once by the composition root.

    `delivery` delivers SendNotification jobs (default: `deps.notifier`, which must then
    not be a QueuedNotifier, or notices would loop through the queue forever).
    CheckVms / CheckSubscriptions jobs arriving within `min_check_gap` of the previous
    run of the same kind (by `deps.clock`) are skipped. The first CheckVms (sent at worker
    start) first reports the Proxmox hosts with a clear-text URL (`report_clear_text_hosts`),
    once per process.
    """

    def __init__(
        self,
        deps: WorkerDeps,
        delivery: Notifier | None = None,
        *,
        min_check_gap: timedelta = timedelta(seconds=10),
    ) -> None:
        sender = delivery if delivery is not None else deps.notifier
        if isinstance(sender, QueuedNotifier):
            raise ValueError(
                "SendNotification jobs need a delivering notifier, not a QueuedNotifier"
            )
        self._deps = deps
        self._sender = sender
        self._coalesce = _Coalesce(deps, min_check_gap)
        self._host_urls_reported = False
        rails = deps.order_rails
        self._lapsed = None
        if rails is not None:

            async def complete(payment: SubscriptionPayment) -> object:
                return await complete_payment(
                    deps.uow_factory, deps.clock, rails, deps.queue, payment_id=payment.id
                )

            self._lapsed = LapsedOrders(
                deps.uow_factory,
                deps.clock,
                rails,
                complete=complete,
                report=QueuedNotifier(deps.queue).notify_admins,
            )

    async def check_subscriptions(self, job: CheckSubscriptions) -> None:
        if not self._coalesce.due(job.kind):
            return
        report = await check_subscriptions(self._deps)
        if report.failed:
            log.warning("lifecycle: %d action(s) failed; retried next run", len(report.failed))
        if report.undecided:
            log.warning(
                "lifecycle: subscription(s) %s skipped: their actions cannot be decided",
                ", ".join(map(str, report.undecided)),
            )
        # a never-paid IP-range subscription is cancelled an hour after it was made (as D17)
        await cancel_never_paid_subscriptions(self._deps)
        # issue 13: account credit held by quotes that ended unpaid goes back to the balance
        await release_expired_credit(
            self._deps.uow_factory, self._deps.clock, rails=self._deps.order_rails
        )
        # card orders whose quote lapsed unpaid stop being payable at their provider too
        if self._lapsed is not None:
            await self._lapsed.run()

    async def check_vms(self, job: CheckVms) -> None:
        if not self._host_urls_reported:
            try:
                await report_clear_text_hosts(self._deps)
                self._host_urls_reported = True
            except Exception:  # the database: tried again with the next check
                log.exception("cannot check the hosts' API URLs")
        if self._coalesce.due(job.kind):
            await check_vms(self._deps)

    async def check_vm(self, job: CheckVm) -> None:
        await check_vm(self._deps, job.vm_id)

    async def spawn_vm(self, job: SpawnVm) -> None:
        await spawn_or_check(self._deps, job.vm_id)

    async def process_vm_upgrade(self, job: ProcessVmUpgrade) -> None:
        await process_vm_upgrade(self._deps, job.vm_id, job.config)

    async def delete_vm(self, job: DeleteVm) -> None:
        await delete_by_admin(self._deps, job)

    async def power_vm(self, job: StartVm | StopVm) -> None:
        await power_by_admin(self._deps, job)

    async def send_notification(self, job: SendNotification) -> None:
        await self._sender.notify_user(job.user_id, job.title or "", job.message)

    async def send_admin_notification(self, job: SendAdminNotification) -> None:
        await self._sender.notify_admins(job.title or "", job.message)

    async def send_email_verification(self, job: SendEmailVerification) -> None:
        await send_email_verification(self._deps, self._sender, job.user_id)

    async def download_os_images(self, job: DownloadOsImages) -> None:
        """One image, or every enabled image (the reference's `image_id: None`), to the hosts."""
        if job.image_id is not None:
            await download_os_images(self._deps, job.image_id, job.host_id)
            return
        async with self._deps.uow_factory() as uow:
            image_ids = [image.id for image in await uow.images.list_all() if image.enabled]
        for image_id in image_ids:
            await download_os_images(self._deps, image_id, job.host_id)

    def handlers(self) -> JobHandlers:
        """Each job type this worker runs, with its handler."""
        table = JobHandlers()
        table.on(CheckSubscriptions, self.check_subscriptions)
        table.on(CheckVms, self.check_vms)
        table.on(CheckVm, self.check_vm)
        table.on(SpawnVm, self.spawn_vm)
        table.on(ProcessVmUpgrade, self.process_vm_upgrade)
        table.on(DeleteVm, self.delete_vm)
        table.on(StartVm, self.power_vm)
        table.on(StopVm, self.power_vm)
        table.on(SendNotification, self.send_notification)
        table.on(SendAdminNotification, self.send_admin_notification)
        table.on(SendEmailVerification, self.send_email_verification)
        table.on(DownloadOsImages, self.download_os_images)
        return table


def build_handlers(
    deps: WorkerDeps,
    delivery: Notifier | None = None,
    *,
    min_check_gap: timedelta = timedelta(seconds=10),
) -> JobHandlers:
    """The handler of every job type this worker runs (see `WorkerJobs`)."""
    return WorkerJobs(deps, delivery, min_check_gap=min_check_gap).handlers()
