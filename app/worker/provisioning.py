"""Spawn and delete pipelines (lifecycle.md §10.3, §10.4) and the CheckVm rules (§9.6–9.7)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime

import attrs

from app.billing.overtaken import credit_overtaken, placing_deleted
from app.billing.restorable import move_vm
from app.worker import messages
from app.worker.addresses import pick, used_addresses
from app.worker.context import WorkerDeps
from domain.enums import VmHistoryActionType
from domain.errors import DomainError
from domain.events import PaymentCompleted
from domain.lifecycle import vm_changed, vm_deleted
from domain.model import IpAssignment, Subscription, SubscriptionPayment, Vm, VmHistory, vm_event
from domain.nip19 import npub
from ports.jobs import CheckVm
from ports.storage import UnitOfWork
from ports.vmhost import (
    FullVmInfo,
    VmBuildInProgress,
    VmHost,
    VmNotFoundOnHost,
    VmRunningState,
    VmRunState,
)

log = logging.getLogger("lnvps.worker.provisioning")

#: history kinds that say whether a VM was last powered on or off, and why.
POWER_EVENTS = frozenset(
    {
        VmHistoryActionType.CREATED,
        VmHistoryActionType.STARTED,
        VmHistoryActionType.STOPPED,
        VmHistoryActionType.RESTARTED,
        VmHistoryActionType.EXPIRED,
    }
)


#: metadata key of the history entry Created that says a VM its host lost is being built again
REBUILT = "rebuilt"


class SpawnRefused(DomainError):
    """The VM cannot be built as stored (read-only mode, missing image, key or disk)."""


def history(
    vm_id: int, kind: VmHistoryActionType, now: datetime, text: str, **meta: object
) -> VmHistory:
    return vm_event(vm_id, kind, now, text, metadata=dict(meta) if meta else None)


async def full_info(uow: UnitOfWork, vm: Vm, ips: tuple[IpAssignment, ...]) -> FullVmInfo:
    """Everything the host needs to build `vm` with these addresses."""
    host = await uow.hosts.get(vm.host_id)
    disk = await uow.host_disks.get(vm.disk_id)
    image = await uow.images.get(vm.image_id)
    key = await uow.ssh_keys.get(vm.ssh_key_id)
    if host is None or disk is None or image is None or key is None:
        raise SpawnRefused(f"VM {vm.id} refers to a missing host, disk, image or SSH key")
    template = None if vm.template_id is None else await uow.templates.get(vm.template_id)
    custom = (
        None
        if vm.custom_template_id is None
        else await uow.custom_templates.get(vm.custom_template_id)
    )
    ranges = []
    for range_id in sorted({a.ip_range_id for a in ips}):
        found = await uow.ip_ranges.get(range_id)
        if found is not None:
            ranges.append(found)
    return FullVmInfo(
        vm=vm,
        host=host,
        disk=disk,
        image=image,
        ssh_key=key,
        template=template,
        custom_template=custom,
        ips=ips,
        ranges=tuple(ranges),
    )


async def facts_of(uow: UnitOfWork, info: FullVmInfo) -> messages.VmFacts:
    user = await uow.users.get(info.vm.user_id)
    spec = info.resources
    image = info.image
    return messages.VmFacts(
        vm_id=info.vm.id,
        cpu=spec.cpu,
        memory=spec.memory,
        disk=spec.disk_size,
        os=f"{image.distribution.name.title()} {image.version}",
        ips=tuple(a.ip for a in info.ips),
        npub="" if user is None else npub(user.pubkey),
    )


async def deleted_since_built(uow: UnitOfWork, vm_id: int) -> VmHistory | None:
    """The Deleted entry when the VM was deleted after it was last started, else None (D24).

    A payment for a deleted VM un-deletes it and its spawn builds it afresh: that VM is new
    and empty, and the notices must say so instead of a plain "Created".
    """
    page = await uow.vm_history.list_by_vm(vm_id, 50)
    for entry in page.items:
        if entry.action_type is VmHistoryActionType.DELETED:
            return entry
        if entry.action_type is VmHistoryActionType.STARTED:
            return None
    return None


async def _cache(deps: WorkerDeps, vm_id: int, state: VmRunningState) -> None:
    if deps.states is not None:
        await deps.states.set(vm_id, state)


async def _rollback_create(deps: WorkerDeps, client: VmHost, vm: Vm) -> None:
    try:
        await client.delete_vm(vm)
    except Exception:
        log.exception("rollback: could not remove half-built VM %s from its host", vm.id)


async def _remove_leftover(deps: WorkerDeps, client: VmHost, vm: Vm) -> None:
    """Remove what a spawn that died after building but before saving left on the host.

    A VM never provisioned here (no MAC saved) that its host has anyway was built by a
    spawn killed before its commit, with addresses that were never saved; it is removed so
    the spawn builds it clean, as if the crashed spawn had rolled back. One its host is
    still building (`VmBuildInProgress`) is kept: the host's create waits for that build.
    """
    try:
        await deps.retry.call(f"state of VM {vm.id}", lambda: client.get_vm_state(vm))
    except VmNotFoundOnHost:
        return
    log.warning("VM %s is on its host from an unfinished spawn; building it again", vm.id)
    try:
        await deps.retry.call(f"delete VM {vm.id}", lambda: client.delete_vm(vm))
    except VmBuildInProgress:  # a create that outlived its wait: the create waits for it
        log.info("VM %s is still being built on its host; the spawn waits for it", vm.id)


async def _locks_of(deps: WorkerDeps, vm_id: int) -> tuple[int, int] | None:
    """The subscription and region a spawn of `vm_id` locks, read before taking them."""
    async with deps.uow_factory() as uow:
        vm = await uow.vms.get(vm_id)
        if vm is None:
            return None
        sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
        host = await uow.hosts.get(vm.host_id)
    return None if sub is None or host is None else (sub.id, host.region_id)


async def _already_on_host(deps: WorkerDeps, client: VmHost, vm: Vm) -> VmRunningState | None:
    """The host's state of a VM built before, or None when the host does not have it."""
    if not vm.is_provisioned:
        return None
    try:
        state: VmRunningState = await deps.retry.call(
            f"state of VM {vm.id}", lambda: client.get_vm_state(vm)
        )
    except VmNotFoundOnHost:
        return None
    return state


def spawn_lease(vm_id: int) -> str:
    """The worker lease of host work on one VM: building, resizing, starting, deleting it or
    stopping it at its expiry (one at a time, however many workers or deliveries of a job).

    Whatever starts a VM (a build, a resize, an admin's or its owner's start, the VM check's
    start after a renewal) decides under this lease that the VM is paid, and the expiry stop
    holds it during its host call: a start never lands after the period's one stop, which
    would leave the expired VM running through its grace (D15: the stop is not repeated)."""
    return f"spawn:{vm_id}"


@attrs.frozen(kw_only=True)
class _Build:
    """What the claiming transaction of a spawn hands to the host step."""

    vm: Vm
    subscription_id: int
    client: VmHost
    info: FullVmInfo
    kept_mac: bool
    token: str
    #: the Deleted entry when a late payment revived a deleted VM (D24 notices), else None
    deleted: VmHistory | None = None


async def _claim_build(deps: WorkerDeps, vm_id: int, now: datetime) -> _Build | None:
    """Step 1 of a spawn: a short transaction that takes the build lease and commits the
    VM's addresses, so they exist before the host ever runs the VM (and a client that
    sees it running sees them too)."""
    locks = await _locks_of(deps, vm_id)
    if locks is None:
        log.info("VM %s is gone; nothing to spawn", vm_id)
        return None
    async with deps.uow_factory() as uow:
        # both locks before the first plain read, so every read below sees what the other
        # spawns committed (MariaDB fixes a transaction's snapshot at its first plain read);
        # the region lock keeps two spawns in one region from picking the same free address
        sub = await uow.subscriptions.get_for_update(locks[0])
        await uow.regions.lock(locks[1])
        vm = await uow.vms.get(vm_id)
        if vm is None or vm.deleted:
            log.info("VM %s is gone; nothing to spawn", vm_id)
            return None
        # judged under the subscription's lock, which the expiry stop's claim holds too: a
        # stop claimed before this (none to do on the host for a VM not built) is seen here,
        # and one claimed after finds the build lease taken below and waits for the build
        if not is_paid_now(sub, deps.clock.now()):
            log.warning("VM %s: its paid time is over; not built", vm_id)
            return None
        token = await uow.worker_leases.take(spawn_lease(vm_id), now, now - deps.host_lease)
        if token is None:
            # another worker builds it, or deletes it from its host (the delete holds this
            # lease too, and sends SpawnVm itself if a payment overtook it: D24)
            log.info(
                "VM %s is being built, resized or deleted by another worker; not built now", vm_id
            )
            return None
        host, client = await deps.host_of(uow, vm.host_id)
        ips = tuple(await uow.ip_assignments.list_by_vm(vm.id))
        kept = bool(ips)
        if not kept:
            ranges = await uow.ip_ranges.list_by_region(host.region_id)
            new = pick(ranges, await used_addresses(uow, {r.id for r in ranges}), vm.id)
            ips = tuple([await uow.ip_assignments.add(a) for a in new])
        info = await full_info(uow, vm, ips)
        deleted = await deleted_since_built(uow, vm_id)
        await uow.commit()
    return _Build(
        vm=vm,
        subscription_id=locks[0],
        client=client,
        info=info,
        kept_mac=vm.is_provisioned and kept,
        token=token,
        deleted=deleted,
    )


async def release_lease(deps: WorkerDeps, name: str, token: str) -> None:
    """Give up a worker lease in a unit of work of its own, best effort: a failure is
    logged, never raised (the lease then lapses `host_lease` after its last renewal), so it
    hides no error of the step it follows. Only the lease taken with `token` is dropped:
    one another worker took over meanwhile (ours gone stale) stays theirs."""
    try:
        async with deps.uow_factory() as uow:
            await uow.worker_leases.release(name, token)
            await uow.commit()
    except Exception:
        log.exception("could not release lease %s; it lapses by itself", name)


async def spawn_vm(deps: WorkerDeps, vm_id: int) -> bool:
    """Build the VM on its host and start it (§9.7 `spawn_vm_internal`); True when built.

    Three steps, and no row lock (nor any transaction) is held while the host works, so a
    payment of the same subscription completes meanwhile:
    1. `_claim_build`: under the subscription and region locks, the VM's build lease is
       taken and its addresses are committed (kept ones reused, else one IPv4 and an IPv6
       if the region has a range). A second worker finds the lease and builds nothing.
    2. The host is asked whether it has the VM already (then its state is cached, and a
       stopped one is started: an earlier rebuild left it so), else it gives a MAC and
       creates and starts the VM; the rebuild of a VM built before is recorded first
       (history Created, `_mark_rebuilt`), so a VM check starts it if it is left stopped.
    3. Under the subscription lock again: MAC and the `Started` history entry are saved
       and the lease released. If the VM was deleted meanwhile, or saving fails, the host
       VM is removed again, so a retried SpawnVm starts clean.
    A failing step releases the lease, so a retried job can build. Refused in read-only
    mode (§3). Sends N10 and N11, or for a VM deleted since it was last started (a late
    payment revived it) the D24 notices that it was re-created empty with new addresses.
    A VM its host has although no MAC was saved is a leftover of a spawn that died before
    step 3: it is removed and built clean.
    """
    if deps.read_only:
        raise SpawnRefused("Cant spawn VM's in read-only mode")
    now = deps.clock.now()
    build = await _claim_build(deps, vm_id, now)
    if build is None:
        return False
    try:
        async with deps.keep_leases({spawn_lease(vm_id): build.token}):
            facts = await _build_on_host(deps, build, now)
    finally:
        await release_lease(deps, spawn_lease(vm_id), build.token)
    if facts is None:
        return False
    await _cache(
        deps, vm_id, VmRunningState(timestamp=int(now.timestamp()), state=VmRunState.RUNNING)
    )
    if build.deleted is None:
        user_notice = messages.vm_created(facts, now, admin=False)
        admin_notice = messages.vm_created(facts, now, admin=True)
    else:  # D24: a late payment revived a deleted VM; say it is new and empty
        at, user_id = build.deleted.timestamp, build.vm.user_id
        user_notice = messages.vm_recreated(facts, at, now, admin=False)
        admin_notice = messages.vm_recreated(facts, at, now, admin=True, user_id=user_id)
    await deps.tell_user(build.vm.user_id, user_notice.title, user_notice.message)
    await deps.tell_admins(admin_notice.title, admin_notice.message)
    return True


async def _build_on_host(deps: WorkerDeps, build: _Build, now: datetime) -> messages.VmFacts | None:
    """Steps 2 and 3 of `spawn_vm`; the facts for the notices, or None when nothing was built."""
    vm, client, vm_id = build.vm, build.client, build.vm.id
    present = await _already_on_host(deps, client, vm)
    if present is not None:
        log.info("VM %s is already on its host; not built again", vm_id)
        if present.state is VmRunState.STOPPED:
            await _start_present(deps, client, vm, now)
            present = attrs.evolve(present, state=VmRunState.RUNNING)
        await _cache(deps, vm_id, present)
        return None
    if vm.is_provisioned:
        await _mark_rebuilt(deps, vm_id, now)
    else:
        await _remove_leftover(deps, client, vm)
    mac = vm.mac_address if build.kept_mac else await client.generate_mac(vm)
    built = attrs.evolve(vm, mac_address=mac)
    info = attrs.evolve(build.info, vm=built)
    await deps.retry.call(f"create VM {vm_id}", lambda: client.create_vm(info))
    try:
        await deps.retry.call(f"start VM {vm_id}", lambda: client.start_vm(built))
        async with deps.uow_factory() as uow:
            sub = await uow.subscriptions.get_for_update(build.subscription_id)  # first
            current = await uow.vms.get(vm_id)
            if current is None or current.deleted:
                log.info("VM %s was deleted while it was built; removed from its host", vm_id)
                await _rollback_create(deps, client, built)
                return None
            saved = attrs.evolve(current, mac_address=mac)
            if sub is not None:  # always, with the foreign key
                vm_changed((current, sub), (saved, sub), now)
            await uow.vms.update(saved)
            await uow.vm_history.add(
                history(vm_id, VmHistoryActionType.STARTED, now, f"VM {vm_id} was started")
            )
            facts = await facts_of(uow, attrs.evolve(info, vm=saved))
            await uow.commit()
    except BaseException:
        await _rollback_create(deps, client, built)
        raise
    return facts


async def _start_present(deps: WorkerDeps, client: VmHost, vm: Vm, now: datetime) -> None:
    """Start a VM its spawn found on its host but stopped (history Started): an earlier
    rebuild of it that outlived its wait finished, or left it when its start failed. Its
    spawn decided it is paid, under the lease it still holds."""
    await deps.retry.call(f"start VM {vm.id}", lambda: client.start_vm(vm))
    async with deps.uow_factory() as uow:
        await uow.vm_history.add(
            history(vm.id, VmHistoryActionType.STARTED, now, f"VM {vm.id} was started")
        )
        await uow.commit()


async def _mark_rebuilt(deps: WorkerDeps, vm_id: int, now: datetime) -> None:
    """Record (history Created, `REBUILT`) that a VM built before is built again on its host,
    which lost it; not twice in a row. Until history Started follows, the VM check starts the
    paid VM when its host has it stopped (`left_stopped`): a rebuild that outlived its wait
    and finished later, or whose start and undoing delete both failed, is not left off."""
    async with deps.uow_factory() as uow:
        latest = await last_power_event(uow, vm_id)
        if latest is not None and is_rebuilt(latest):
            return
        text = f"VM {vm_id} was not on its host; built again"
        await uow.vm_history.add(
            history(vm_id, VmHistoryActionType.CREATED, now, text, **{REBUILT: True})
        )
        await uow.commit()


async def _on_host(
    deps: WorkerDeps, vm: Vm, verb: str, op: Callable[[], Awaitable[None]], absent: str
) -> None:
    """Run `op` on a built VM's host with retries; a VM the host does not have logs `absent`."""
    if not vm.is_provisioned:
        return
    try:
        await deps.retry.call(f"{verb} VM {vm.id}", op)
    except VmNotFoundOnHost:
        log.info(absent, vm.id)


async def delete_on_host(deps: WorkerDeps, client: VmHost, vm: Vm) -> None:
    """Remove the VM from its host; a VM the host never had, or no longer has, counts as gone."""
    await _on_host(
        deps, vm, "delete", lambda: client.delete_vm(vm), "VM %s was already gone from its host"
    )


async def forget_vm(uow: UnitOfWork, vm: Vm, now: datetime) -> None:
    """The database half of the delete pipeline: addresses released, row marked deleted
    (through the VM state law, `domain.lifecycle.vm_deleted`)."""
    sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
    if sub is not None:
        vm_deleted(vm, sub, now)
    for assignment in await uow.ip_assignments.list_by_vm(vm.id):
        await uow.ip_assignments.delete(assignment.id)
    await uow.vms.delete(vm.id)


async def record_deleted(
    uow: UnitOfWork,
    vm: Vm,
    now: datetime,
    text: str,
    *,
    at: datetime | None = None,
    **meta: object,
) -> None:
    """How every deletion of a VM is recorded (the lifecycle's, one a payment overtook, an
    admin's): `forget_vm` at `now`, then history Deleted saying `text`, with `meta`, stamped
    `at` (default `now`)."""
    await forget_vm(uow, vm, now)
    stamp = now if at is None else at
    await uow.vm_history.add(history(vm.id, VmHistoryActionType.DELETED, stamp, text, **meta))


@attrs.frozen
class Revival:
    """What `revive_paid` did: the VM brought back (`revived`), or not, with the
    subscription as it left it and the payments it booked as credit (to tell of after the
    commit: `app.billing.overtaken.tell_overtaken_credited`)."""

    revived: bool
    subscription: Subscription
    credited: tuple[PaymentCompleted, ...] = ()


async def revive_paid(
    uow: UnitOfWork,
    vm: Vm,
    sub: Subscription,
    late: Sequence[SubscriptionPayment],
    now: datetime,
    region: int | None,
) -> Revival:
    """Bring back a VM just recorded deleted (`forget_vm`, history Deleted) whose host
    deletion the paid Purchases/Renewals `late` overtook (D24), as those payments would
    have had they come a moment later: placed as completion places a deleted VM
    (`placing_deleted`, under the lock of its host's region, `region`; another region
    raises `RegionMoved` and the caller runs its transaction again under that lock): on its
    own host if it has room, else moved to another host of its region (history
    ConfigurationChanged), then un-deleted (`undelete_for_subscription`) with no addresses
    and its old disk gone. The caller sends SpawnVm after its commit; the spawn gives it new
    addresses and, finding the Deleted entry, tells the user and the admins that it was
    re-created empty (`deleted_since_built`).

    With no place for it (its offer withdrawn, or no host of its region with room: the
    room its deletion freed may be taken already) it stays deleted, and `late` are booked
    as account credit with the time they bought taken back (`credit_overtaken`), as
    completion books a payment for a VM it cannot restore."""
    deleted = attrs.evolve(vm, deleted=True)
    placed = await placing_deleted(uow, deleted, now, region)
    if placed.why is not None:
        after, credited = await credit_overtaken(uow, sub, late, placed.why, now)
        return Revival(revived=False, subscription=after, credited=credited)
    if placed.moved_to is not None:
        deleted = await move_vm(uow, deleted, placed.moved_to, now)
    vm_changed((deleted, sub), (attrs.evolve(deleted, deleted=False), sub), now)
    await uow.vms.undelete_for_subscription(sub.id)
    return Revival(revived=True, subscription=sub)


async def delete_in(deps: WorkerDeps, uow: UnitOfWork, vm: Vm, now: datetime) -> None:
    """The delete pipeline inside the caller's transaction (§10.4): host, addresses, row.

    The host VM goes first; if the host refuses, nothing is written and the caller's
    transaction rolls back. (The lifecycle's grace deletion calls the host outside any
    transaction instead: `delete_on_host`, then `forget_vm` in its own.)
    """
    if vm.is_provisioned:
        _, client = await deps.host_of(uow, vm.host_id)
        await delete_on_host(deps, client, vm)
    await forget_vm(uow, vm, now)


async def stop_on_host(deps: WorkerDeps, client: VmHost, vm: Vm) -> None:
    """Power the VM off on its host (a VM never built or missing there counts as stopped)."""
    await _on_host(
        deps, vm, "stop", lambda: client.stop_vm(vm), "VM %s is not on its host; nothing to stop"
    )


async def last_power_event(uow: UnitOfWork, vm_id: int) -> VmHistory | None:
    """The VM's latest history entry that says it was powered on or off (`POWER_EVENTS`)."""
    page = await uow.vm_history.list_by_vm(vm_id, 50)
    for entry in page.items:
        if entry.action_type in POWER_EVENTS:
            return entry
    return None


def is_rebuilt(entry: VmHistory) -> bool:
    """Whether the entry is the Created of a rebuild on the host (`_mark_rebuilt`)."""
    meta = entry.metadata
    return (
        entry.action_type is VmHistoryActionType.CREATED
        and isinstance(meta, Mapping)
        and meta.get(REBUILT) is True
    )


async def stopped_by_expiry(uow: UnitOfWork, vm_id: int) -> bool:
    """Whether the VM's latest power event is the expiry stop (not a user's or admin's stop)."""
    latest = await last_power_event(uow, vm_id)
    return latest is not None and latest.action_type is VmHistoryActionType.EXPIRED


async def left_stopped(uow: UnitOfWork, vm_id: int) -> bool:
    """Whether a paid VM its host has stopped was left off by LNVPS, to be started: its
    latest power event is the expiry stop (it was renewed since), or its rebuild on the
    host, never started (`_mark_rebuilt`). A user's, an admin's or the guest's own stop is
    left alone."""
    latest = await last_power_event(uow, vm_id)
    if latest is None:
        return False
    return latest.action_type is VmHistoryActionType.EXPIRED or is_rebuilt(latest)


def is_paid_now(sub: Subscription | None, now: datetime) -> bool:
    return sub is not None and sub.expires is not None and sub.expires > now


async def paid_now(deps: WorkerDeps, uow: UnitOfWork, vm: Vm) -> bool:
    """Whether the VM's subscription, read now, is paid at this moment (`is_paid_now`): what
    a start decides under the VM's lease (`spawn_lease`) right before the host starts it."""
    sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
    return is_paid_now(sub, deps.clock.now())


async def handle_vm_state(
    deps: WorkerDeps, vm: Vm, sub: Subscription | None, state: VmRunningState | None
) -> None:
    """§9.6 plus the resume rule: cache the host's state; re-spawn a paid VM the host lost.

    A VM the host has but this service never saw built (no MAC saved: its spawn died before
    committing) counts as missing. A paid VM the host reports stopped that LNVPS left off
    (`left_stopped`: its last power event is the expiry stop, renewed since, or a rebuild
    on its host never started) is started (history Started). An expired VM the host
    reports running after its expiry stop (its host rebooted and booted it) is stopped
    again (`stop_expired_again`). An unpaid or expired VM missing from its host is left
    alone (§13 item 27).
    """
    now = deps.clock.now()
    paid = is_paid_now(sub, now)
    if state is None or not vm.is_provisioned:  # lost, or left by a spawn that died
        if paid and not vm.deleted:
            log.warning("paid VM %s is missing from its host; spawning it again", vm.id)
            await spawn_vm(deps, vm.id)
        return
    await _cache(deps, vm.id, state)
    if not paid and state.state is VmRunState.RUNNING:
        await stop_expired_again(deps, vm, state, now)
        return
    if not paid or state.state is not VmRunState.STOPPED:
        return
    async with deps.uow_factory() as uow:  # reads only: most stopped VMs stay as they are
        if not await left_stopped(uow, vm.id):
            return
    async with deps.uow_factory() as uow:
        # the VM's lease first (the expiry stop holds it during its host call), then paid
        # judged again under it: a stop of a period ending meanwhile waits for this start
        token = await uow.worker_leases.take(spawn_lease(vm.id), now, now - deps.host_lease)
        if token is None:  # built, resized, started or stopped right now: a later check
            log.info("VM %s is busy on its host; not started by this check", vm.id)
            return
        if not await paid_now(deps, uow, vm) or not await left_stopped(uow, vm.id):
            return  # nothing committed: no lease kept
        _, client = await deps.host_of(uow, vm.host_id)
        await uow.commit()
    try:  # the host starts it with no transaction open; starting twice is harmless
        async with deps.keep_leases({spawn_lease(vm.id): token}):
            await deps.retry.call(f"start VM {vm.id}", lambda: client.start_vm(vm))
        async with deps.uow_factory() as uow:  # recorded under the lease: before a later stop's
            await uow.vm_history.add(
                history(vm.id, VmHistoryActionType.STARTED, now, f"VM {vm.id} was started")
            )
            await uow.worker_leases.release(spawn_lease(vm.id), token)
            await uow.commit()
    except BaseException:  # the host or the recording failed: the VM is not kept busy
        await release_lease(deps, spawn_lease(vm.id), token)
        raise
    await _cache(deps, vm.id, attrs.evolve(state, state=VmRunState.RUNNING))


async def stop_expired_again(
    deps: WorkerDeps, vm: Vm, state: VmRunningState, now: datetime
) -> None:
    """Stop an unpaid VM found running whose last power event is its expiry stop.

    The expiry stop happens once per period (D15), so a VM its host booted again afterwards
    (a node reboot with the VM still marked to start on boot) would run free until its
    grace deletion. It is stopped here, decided under the VM's lease with the payment and
    the host's state read again (a renewal that lands first leaves the VM running; a read
    from before the expiry stop itself stops nothing), and recorded as one more Expired
    entry: the renewal rule still starts it, and the next check finds it stopped, so it is
    stopped and recorded once per time it comes back. A renewal paid while the stop ran
    (its own check saw the VM running and did nothing) is seen when the stop is recorded,
    and a CheckVm sent then starts the VM at once (review r21). No notice:
    the owner was told at the expiry. A VM whose last power event is a later start (recorded
    Started) is left alone.
    """
    async with deps.uow_factory() as uow:  # reads only: nearly always nothing to do
        if not await stopped_by_expiry(uow, vm.id):
            return
    async with deps.uow_factory() as uow:
        token = await uow.worker_leases.take(spawn_lease(vm.id), now, now - deps.host_lease)
        if token is None:
            log.info("VM %s is busy on its host; not stopped by this check", vm.id)
            return
        if await paid_now(deps, uow, vm) or not await stopped_by_expiry(uow, vm.id):
            return  # nothing committed: no lease kept
        _, client = await deps.host_of(uow, vm.host_id)
        await uow.commit()
    try:  # read again under the lease: the check's read may predate the expiry stop
        async with deps.keep_leases({spawn_lease(vm.id): token}):
            fresh = await deps.retry.call(f"state of VM {vm.id}", lambda: client.get_vm_state(vm))
            if fresh.state is VmRunState.RUNNING:
                log.warning(
                    "VM %s runs after its expiry stop (its host booted it); stopping it", vm.id
                )
                await stop_on_host(deps, client, vm)
    except BaseException:
        await release_lease(deps, spawn_lease(vm.id), token)
        raise
    if fresh.state is not VmRunState.RUNNING:
        await release_lease(deps, spawn_lease(vm.id), token)
        await _cache(deps, vm.id, fresh)
        return
    try:
        async with deps.uow_factory() as uow:
            text = f"VM {vm.id} was found running after its expiry stop and was stopped again"
            await uow.vm_history.add(history(vm.id, VmHistoryActionType.EXPIRED, now, text))
            renewed = await paid_now(deps, uow, vm)
            await uow.worker_leases.release(spawn_lease(vm.id), token)
            await uow.commit()
    except BaseException:  # the host stopped it but the recording failed: a renewal's
        # start must not wait for the lease's 15 minutes
        await release_lease(deps, spawn_lease(vm.id), token)
        raise
    await _cache(deps, vm.id, attrs.evolve(state, state=VmRunState.STOPPED))
    if renewed:  # paid while the stop ran: its CheckVm found it running, so start it now
        await deps.queue.send(CheckVm(vm_id=vm.id))


async def vm_with_subscription(
    uow: UnitOfWork, vm_id: int
) -> tuple[Vm | None, Subscription | None]:
    """The VM and the subscription that bills it; (None, None) for a VM not stored."""
    vm = await uow.vms.get(vm_id)
    if vm is None:
        return None, None
    return vm, await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)


async def check_vm(deps: WorkerDeps, vm_id: int) -> None:
    """CheckVm, and SpawnVm for a VM already built (§9.6, §9.7)."""
    async with deps.uow_factory() as uow:
        vm = await uow.vms.get(vm_id)
        if vm is None or vm.deleted:
            return
        sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
        _, client = await deps.host_of(uow, vm.host_id)
    try:
        state: VmRunningState | None = await deps.retry.call(
            f"state of VM {vm_id}", lambda: client.get_vm_state(vm)
        )
    except VmNotFoundOnHost:
        state = None
    await handle_vm_state(deps, vm, sub, state)


async def spawn_or_check(deps: WorkerDeps, vm_id: int) -> None:
    """SpawnVm (§9.7): build a paid VM never built; a built one gets the CheckVm rules.

    Unlike the reference, a deleted VM or one whose subscription is not paid up is not
    built (the job is sent after a payment, so this only skips stale jobs).
    """
    async with deps.uow_factory() as uow:
        vm, sub = await vm_with_subscription(uow, vm_id)
    if vm is None or vm.deleted:
        return
    if vm.is_provisioned:
        await check_vm(deps, vm_id)
        return
    if not is_paid_now(sub, deps.clock.now()):
        log.warning("SpawnVm for VM %s without paid time; not built", vm_id)
        return
    if deps.states is not None:
        await deps.states.set(vm_id, VmRunningState(state=VmRunState.CREATING))
    await spawn_vm(deps, vm_id)
