"""The owner's VM actions (api.md §6.4 PATCH, §6.5): host calls, history, follow-up jobs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

import attrs

from app.billing.catalogue import owned_vm, subscription_of
from app.billing.errors import ImageNotFound, SshKeyNotFound, VmNotFound
from app.services import Services
from app.worker.context import HOST_LEASE
from app.worker.lease_keeper import LeaseKeeper
from app.worker.provisioning import full_info, spawn_lease
from domain.enums import VmHistoryActionType
from domain.errors import DomainError, InvalidInput
from domain.model import User, Vm, VmHistory, vm_event
from domain.text_rules import is_host_name
from ports.jobs import CheckVm
from ports.queue import Job
from ports.storage import UnitOfWork
from ports.vmhost import FullVmInfo, VmHost, VmHostError

log = logging.getLogger("lnvps.vm_actions")


class VmNotProvisioned(DomainError):
    """The VM has not been built on a host yet (unpaid, or the spawn job has not run)."""

    kind = "conflict"


class VmExpired(DomainError):
    """An expired VM stays off until it is renewed (422)."""


class VmBusy(DomainError):
    """The worker builds, resizes or stops the VM right now (409): tried again later."""

    kind = "conflict"


class VmHostUnavailable(DomainError):
    """The hypervisor call failed; details go to the log only (503, D19)."""

    kind = "unavailable"


HostCall = Callable[[VmHost], Awaitable[None]]
_ACTION = {
    "start": VmHistoryActionType.STARTED,
    "stop": VmHistoryActionType.STOPPED,
    "restart": VmHistoryActionType.RESTARTED,
    "re-install": VmHistoryActionType.REINSTALLED,
}
ACTIONS = tuple(_ACTION)


async def _host_of(services: Services, uow: UnitOfWork, vm: Vm) -> VmHost:
    host = await uow.hosts.get(vm.host_id)
    if host is None:
        raise VmHostUnavailable("The VM's host is not configured")
    try:
        return services.hosts.for_host(host)
    except VmHostError as err:
        log.error("no client for host %s of VM %s: %s", host.id, vm.id, err.message)
        raise VmHostUnavailable("The VM's host is not available") from err


async def run_action(
    services: Services, user: User, vm_id: int, action: str, image_id: int | None = None
) -> None:
    """Start, stop, restart (a real reset, D21) or re-install (with `image_id`, D21) now.

    The host is called synchronously as the reference does, so the owner learns of a failure
    (503) at once; then a history entry is written and a CheckVm job refreshes the state.
    An unprovisioned VM is a 409; an expired one may be stopped but not started, restarted
    or re-installed (422).

    Every action but a stop may leave the VM running, so it holds the VM's lease
    (`spawn_lease`, which the worker's expiry stop holds during its host call) from the
    paid check until its history entry is recorded: a start never lands after the
    period's stop, which is not repeated, and a stop of a period ending meanwhile waits
    for it. A VM whose lease the worker holds (built, resized or stopped at its expiry
    right now) is a 409, to be tried again.
    """
    now = services.clock.now()
    token = None
    async with services.uow_factory() as uow:
        if action != "stop":  # the lease first: what its last holder committed is seen below
            token = await uow.worker_leases.take(spawn_lease(vm_id), now, now - HOST_LEASE)
        vm = await owned_vm(uow, vm_id, user.id)
        if not vm.is_provisioned:
            raise VmNotProvisioned("VM is not provisioned yet")
        sub = await subscription_of(uow, vm)
        if action != "stop" and (sub.expires is None or sub.expires <= now):
            raise VmExpired(f"Cannot {action} expired VM")  # nothing committed: no lease kept
        if action != "stop" and token is None:
            raise VmBusy("The VM is busy (being built, resized or stopped); try again shortly")
        target = vm
        if action == "re-install" and image_id is not None and image_id != vm.image_id:
            image = await uow.images.get(image_id)
            if image is None or not image.enabled:
                raise ImageNotFound("OS image not found")
            target = attrs.evolve(vm, image_id=image_id)
        host = await _host_of(services, uow, vm)
        info = (
            await full_info(uow, target, tuple(await uow.ip_assignments.list_by_vm(vm.id)))
            if action == "re-install"
            else None
        )
        await uow.commit()
    held = {} if token is None else {spawn_lease(vm_id): token}
    keeper = LeaseKeeper(uow_factory=services.uow_factory, clock=services.clock, lease=HOST_LEASE)
    try:
        async with keeper.kept(held):  # a re-install may take long
            await _call_host(host, vm, action, info)
        async with services.uow_factory() as uow:  # under the lease: before a later stop's
            if target is not vm:  # the image alone: an upgrade booked meanwhile is kept
                await _lock_vm_rows(uow, sub.id)
                await uow.vms.set_image(vm.id, target.image_id)
            await uow.vm_history.add(_entry(vm, target, action, user, now))
            if token is not None:
                await uow.worker_leases.release(spawn_lease(vm_id), token)
            await uow.commit()
    except BaseException:
        if token is not None:
            await _release(services, vm_id, token)
        raise
    await _send(services, CheckVm(vm_id=vm.id))


async def _lock_vm_rows(uow: UnitOfWork, subscription_id: int) -> None:
    """Take the subscription's lock before writing to its VM's rows: a booking (an upgrade, a
    revival) and a build write the VM's row whole under it, from a copy read after it, so a
    write of ours waits for theirs instead of being overwritten by their copy (review r5),
    and takes its locks in their order (subscription first)."""
    await uow.subscriptions.get_for_update(subscription_id)


async def _release(services: Services, vm_id: int, token: str) -> None:
    """Give the VM's lease back after a failed action (never raising: the failure counts)."""
    try:
        async with services.uow_factory() as uow:
            await uow.worker_leases.release(spawn_lease(vm_id), token)
            await uow.commit()
    except Exception:
        log.exception("could not release the lease of VM %s; it lapses by itself", vm_id)


async def _call_host(host: VmHost, vm: Vm, action: str, info: FullVmInfo | None) -> None:
    try:
        if action == "start":
            await host.start_vm(vm)
        elif action == "stop":
            await host.stop_vm(vm)
        elif action == "restart":
            await host.restart_vm(vm)
        else:
            assert info is not None
            await host.reinstall_vm(info)
    except VmHostError as err:
        log.error("%s of VM %s failed on its host: %s", action, vm.id, err.message)
        raise VmHostUnavailable(f"The VM host could not {action} the VM, try again") from err


def _entry(before: Vm, after: Vm, action: str, user: User, now: datetime) -> VmHistory:
    previous = new = None
    if after.image_id != before.image_id:
        previous, new = {"image_id": before.image_id}, {"image_id": after.image_id}
    verb = {"start": "started", "stop": "stopped", "restart": "restarted"}.get(
        action, "re-installed"
    )
    return vm_event(
        before.id,
        _ACTION[action],
        now,
        f"VM {before.id} was {verb} by its owner",
        by=user.id,
        before=previous,
        after=new,
    )


async def _send(services: Services, job: Job) -> None:
    """Follow-up jobs are best effort: the action itself already happened."""
    try:
        await services.queue.send(job)
    except Exception:
        log.exception("could not queue %s", job.kind)


@attrs.frozen(kw_only=True)
class VmPatch:
    ssh_key_id: int | None = None
    reverse_dns: str | None = None
    set_reverse_dns: bool = False
    auto_renewal_enabled: bool | None = None


#: `ip_range_assignment.dns_reverse` is VARCHAR(255); a host name is at most 253 characters.
REVERSE_DNS_LIMIT = 253


def check_reverse_dns(name: str | None) -> str | None:
    """The PTR name to store: an RFC 1123 host name (one trailing dot allowed); `""` and None
    clear it. Anything else (HTML, spaces, 900 000 characters) is a 400, before any change."""
    if name is None or name == "":
        return None
    if not is_host_name(name):
        raise InvalidInput(
            "reverse_dns must be a DNS host name (letters, digits and hyphens in dot-separated "
            f"labels of at most 63 characters, {REVERSE_DNS_LIMIT} in all)"
        )
    return name


async def patch_vm(services: Services, user: User, vm_id: int, patch: VmPatch) -> None:
    """PATCH /vm/{id}: the owner's SSH key, the PTR name of every address, and auto-renewal
    on the VM's subscription, all in one transaction.

    A new SSH key is recorded only: no host can change a running VM's authorized keys (they
    are cloud-init data, read when a disk is first booted), so it reaches the VM with its
    next re-install, which builds the fresh disk with the key stored then (the reference
    queued a ConfigureVm job no worker carried out; the Pulumi client re-installs after
    every key change).

    Each is a narrow write of its own column (review r5): the rows are read before the
    subscription's lock, and a renewal, upgrade or deletion committed meanwhile must keep
    what it wrote (a whole-row write of the copies read here erased a paid renewal's
    `expires`). The lock is taken before the first write (`_lock_vm_rows`)."""
    reverse_dns = check_reverse_dns(patch.reverse_dns) if patch.set_reverse_dns else None
    async with services.uow_factory() as uow:
        vm = await owned_vm(uow, vm_id, user.id)
        sub = await subscription_of(uow, vm)
        await _lock_vm_rows(uow, sub.id)
        if patch.ssh_key_id is not None and patch.ssh_key_id != vm.ssh_key_id:
            key = await uow.ssh_keys.get(patch.ssh_key_id)
            if key is None or key.user_id != user.id:
                raise SshKeyNotFound("SSH key not found")
            if not await uow.vms.set_ssh_key(vm.id, key.id):
                raise VmNotFound("VM not found")  # deleted meanwhile
        if patch.set_reverse_dns:
            await uow.ip_assignments.set_dns_reverse(vm.id, reverse_dns)
        if patch.auto_renewal_enabled is not None:
            await uow.subscriptions.set_auto_renewal(sub.id, patch.auto_renewal_enabled)
        await uow.commit()
