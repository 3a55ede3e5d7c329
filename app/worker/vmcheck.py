"""check_vms: never-paid cleanup (D17), host state sync of paid VMs (§9.5, §9.6), lost resizes."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import timedelta

import attrs

from app.worker import messages
from app.worker.context import WorkerDeps
from app.worker.pending import cancel_ended, end_pending
from app.worker.provisioning import delete_in, handle_vm_state, vm_with_subscription
from domain.lifecycle import never_paid_cleanup_due
from domain.model import Subscription, Vm
from domain.upgrade import AS_RECORDED
from ports.jobs import ProcessVmUpgrade
from ports.vmhost import VmHost, VmRunningState

log = logging.getLogger("lnvps.worker.vmcheck")

#: how long a paid upgrade's resize may stay unconfirmed before the VM check sends its job
#: again: longer than a queued ProcessVmUpgrade waits and runs, so none is doubled
RESIZE_GRACE = timedelta(minutes=10)


@attrs.define
class VmCheckReport:
    """What one run did: never-paid VMs deleted, VMs whose state was read, failures, VMs
    whose lost resize job was sent again."""

    deleted: list[int] = attrs.field(factory=list)
    checked: list[int] = attrs.field(factory=list)
    failed: list[int] = attrs.field(factory=list)
    resized: list[int] = attrs.field(factory=list)


async def delete_never_paid(deps: WorkerDeps, vm_id: int) -> bool:
    """Delete the VM of an order never paid, one hour after it was placed (D17, §9.5 step 3).

    Decided under the subscription's row lock, and the VM is read only after the lock is
    held, so two workers never delete it twice and a payment completing at the same moment
    either lands first (the VM is kept) or finds the VM deleted and brings it back
    (lifecycle.md D20 step 2, §13 item 7). A pending (unpaid, unexpired) payment keeps it.
    No history entry and no user notice, as in the reference.
    """
    now = deps.clock.now()
    async with deps.uow_factory() as uow:
        vm, found = await vm_with_subscription(uow, vm_id)
    if vm is None or vm.deleted or found is None:
        return False
    async with deps.uow_factory() as uow:
        sub = await uow.subscriptions.get_for_update(found.id)
        # the first plain read after the lock: sees another worker's committed deletion
        vm = await uow.vms.get(vm_id)
        if sub is None or vm is None or vm.deleted:
            return False
        pending = await uow.payments.list_pending_for_subscription(sub.id, now)
        if not never_paid_cleanup_due(sub, bool(pending), now):
            return False
        await delete_in(deps, uow, vm, now)
        ended = await end_pending(uow, sub.id, now)  # D24 (a race: none was pending above)
        await uow.commit()
    await cancel_ended(deps, ended)
    log.info("deleted VM %s: ordered %s and never paid", vm_id, sub.created.isoformat())
    return True


@attrs.frozen
class _Census:
    """What the VM check reads before it acts: the live VMs (ascending id), the subscription
    of each (absent: none), and the never-paid subscriptions due for cleanup."""

    vms: list[Vm]
    subs: dict[int, Subscription]
    cleanup_due: set[int]


async def _census(deps: WorkerDeps) -> _Census:
    """The read phase in one unit of work and a fixed number of statements, whatever the
    number of VMs: the cheap test (never set up, older than an hour) first, then one batched
    pending-payment read for the subscriptions it keeps. Only a pre-filter: the cleanup
    decides again under the subscription's lock (`delete_never_paid`)."""
    now = deps.clock.now()
    async with deps.uow_factory() as uow:
        vms = await uow.vms.list_active()
        by_item = await uow.subscriptions.get_by_line_items(
            {vm.subscription_line_item_id for vm in vms}
        )
        subs = {
            vm.id: by_item[vm.subscription_line_item_id]
            for vm in vms
            if vm.subscription_line_item_id in by_item
        }
        unpaid = {s.id for s in subs.values() if never_paid_cleanup_due(s, False, now)}
        pending = await uow.payments.with_pending(unpaid, now) if unpaid else set()
    return _Census(vms, subs, unpaid - pending)


async def check_vms(deps: WorkerDeps) -> VmCheckReport:
    """One VM check (§9.5): clean up never-paid orders, then sync paid VMs with their hosts.

    Paid VMs are grouped by host and read with one `get_all_vm_states` per host, all hosts
    at once (a dead host's timeouts hold up no other); a paid,
    unexpired VM the host does not know is spawned again, an expired one is left alone,
    and paid VMs are never deleted here (§13 items 27, 28). One VM's failure is logged and
    the others go on (the reference gave up on the rest of that host). First, the resize of
    every paid upgrade its host has not confirmed for `RESIZE_GRACE` is sent again.
    """
    report = VmCheckReport()
    await resend_lost_resizes(deps, report)
    census = await _census(deps)
    subs = census.subs
    by_host: dict[int, list[Vm]] = defaultdict(list)
    for vm in census.vms:
        sub = subs.get(vm.id)
        if sub is None:
            log.warning("VM %s has no subscription; skipped", vm.id)
        elif sub.in_service:
            by_host[vm.host_id].append(vm)
        elif sub.id in census.cleanup_due:
            await _cleanup(deps, vm, report)
    hosts = sorted(by_host)
    clients = await _clients(deps, hosts)
    read = await asyncio.gather(*(_states_of(deps, h, clients.get(h)) for h in hosts))
    for host_id, states in zip(hosts, read, strict=True):
        group = by_host[host_id]
        if states is None:
            report.failed += [vm.id for vm in group]
            continue
        for vm in group:
            state: VmRunningState | None = states.get(vm.id)
            try:
                await handle_vm_state(deps, vm, subs[vm.id], state)
                report.checked.append(vm.id)
            except Exception:
                log.exception("state check of VM %s failed", vm.id)
                report.failed.append(vm.id)
    log.info(
        "VM check at %s: %d deleted, %d checked, %d failed, %d resizes sent again",
        deps.clock.now().isoformat(),
        len(report.deleted),
        len(report.checked),
        len(report.failed),
        len(report.resized),
    )
    return report


async def _clients(deps: WorkerDeps, host_ids: list[int]) -> dict[int, VmHost]:
    """The client of each host, read in one unit of work; a host that fails is left out."""
    found: dict[int, VmHost] = {}
    async with deps.uow_factory() as uow:
        for host_id in host_ids:
            try:
                found[host_id] = (await deps.host_of(uow, host_id))[1]
            except Exception:
                log.exception("no client for host %s", host_id)
    return found


async def _states_of(
    deps: WorkerDeps, host_id: int, client: VmHost | None
) -> Mapping[int, VmRunningState] | None:
    """The VM states one host reports, None when it cannot be read (logged). The hosts are
    read at the same time: a host that hangs until its call times out holds up no other."""
    if client is None:
        return None
    try:
        return await deps.retry.call(f"states of host {host_id}", client.get_all_vm_states)
    except Exception:
        log.exception("cannot read VM states of host %s", host_id)
        return None


async def _cleanup(deps: WorkerDeps, vm: Vm, report: VmCheckReport) -> None:
    try:
        if await delete_never_paid(deps, vm.id):
            report.deleted.append(vm.id)
    except Exception as err:
        log.exception("never-paid cleanup of VM %s failed", vm.id)
        report.failed.append(vm.id)
        n = messages.unpaid_cleanup_failed(vm.id, "Deletion Failed", str(err))
        await deps.tell_admins(n.title, n.message)


async def resend_lost_resizes(deps: WorkerDeps, report: VmCheckReport) -> None:
    """Send ProcessVmUpgrade again for each VM marked `resize_requested` before the grace.

    The booking marks the VM with its records and the job clears the mark once the host has
    the size, so a mark this old means the job was lost (the process died after the commit,
    the in-process queue dropped it) or failed. One query finds them all; each mark is moved
    to now when its job is sent (compare-and-set: a VM another worker or a newer booking
    changed meanwhile is skipped), so the next re-send waits another grace period. The job
    asks for the size the records hold (`AS_RECORDED`): resizing is idempotent.
    """
    now = deps.clock.now()
    try:
        async with deps.uow_factory() as uow:
            due = await uow.vms.list_resize_requested(now - RESIZE_GRACE)
    except Exception:
        log.exception("cannot read the VMs awaiting a resize")
        return
    for vm in due:
        assert vm.resize_requested is not None
        try:
            async with deps.uow_factory() as uow:
                claimed = await uow.vms.settle_resize(vm.id, vm.resize_requested, now)
                await uow.commit()
            if not claimed:
                continue
            log.warning(
                "VM %s: resize booked %s not confirmed; sending it again",
                vm.id,
                vm.resize_requested.isoformat(),
            )
            await deps.queue.send(ProcessVmUpgrade(vm_id=vm.id, config=AS_RECORDED))
            report.resized.append(vm.id)
        except Exception:
            log.exception("re-sending the resize of VM %s failed", vm.id)
            report.failed.append(vm.id)
