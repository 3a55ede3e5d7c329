"""Whether a payment may bring a VM (back) onto a host (D24, D25): where it stays, the other
host of its region it moves to, or why it cannot come back."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import attrs

from app.billing.order_locks import check_region
from app.billing.placement import Placement, best_placement, disk_of, has_room_to_grow, region_rooms
from domain.cpu_match import CpuKind, serves_cpu
from domain.enums import DiskInterface, DiskType, VmHistoryActionType
from domain.model import Vm, vm_event
from domain.pricing import Spec
from ports.storage import UnitOfWork


class _Switchable(Protocol):
    @property
    def enabled(self) -> bool: ...


@attrs.frozen
class _Nothing:
    """The size of a VM that holds no room on its host (deleted, or an order past its window)."""

    disk_type: DiskType
    cpu: int = 0
    memory: int = 0
    disk_size: int = 0


@attrs.frozen
class _Offer:
    """What a VM was sold as: its size, its disk interface, the region it is sold in and the
    CPU its host must have (its template's, or its custom template's: copied from the
    pricing when ordered)."""

    spec: Spec
    disk_interface: DiskInterface
    region_id: int | None
    cpu: CpuKind


@attrs.frozen
class Placing:
    """How a payment may bring its VM (back): where it is (`moved_to` None, `why` None), on
    another host of its region (`moved_to`), or not at all (`why`: the operator's reason)."""

    why: str | None = None
    moved_to: Placement | None = None


def _unusable(row: _Switchable | None, what: str) -> str | None:
    """Why `what` cannot be used again: its row gone or disabled; None when it can."""
    if row is None:
        return f"{what} is gone"
    if not row.enabled:
        return f"{what} is disabled"
    return None


async def _sold_as(uow: UnitOfWork, vm: Vm) -> tuple[_Offer | None, str | None]:
    """What the VM was sold as (its template, or its custom template and pricing), when that
    row is still there; and why it cannot be sold again (that row, or the custom pricing,
    gone or disabled), None when it can."""
    if vm.template_id is not None:
        template = await uow.templates.get(vm.template_id)
        why = _unusable(template, f"template {vm.template_id} of VM {vm.id}")
        if template is None:
            return None, why
        return _Offer(template, template.disk_interface, template.region_id, template), why
    if vm.custom_template_id is None:
        return None, f"VM {vm.id} has no template"
    custom = await uow.custom_templates.get(vm.custom_template_id)
    if custom is None:
        return None, f"custom template {vm.custom_template_id} of VM {vm.id} is gone"
    pricing = await uow.custom_pricing.get(custom.pricing_id)
    why = _unusable(pricing, f"custom pricing {custom.pricing_id} of VM {vm.id}")
    region = None if pricing is None else pricing.region_id
    return _Offer(custom, custom.disk_interface, region, custom), why


async def _why_no_room(uow: UnitOfWork, vm: Vm, spec: Spec, now: datetime) -> str | None:
    """None when the VM's host and disk can take it again beside what their VMs hold now
    (size × load factor, as an order is placed); else why not. For a VM that holds no room
    today: a deleted one, or a never-paid order past its payment window (D25), whose place
    another order may have taken meanwhile. The caller holds the host's region lock, as an
    order does, so two of them never both take a host's last room."""
    if await has_room_to_grow(uow, vm, _Nothing(spec.disk_type), spec, now):
        return None
    return f"host {vm.host_id} has no room left for VM {vm.id}"


async def _why_not_here(uow: UnitOfWork, vm: Vm, offer: _Offer, now: datetime) -> str | None:
    """Why the deleted VM cannot come back on its own host and disk: either gone or
    disabled, the host's CPU not what its offer asks for (it is built anew there, as an
    order would be; the offer's CPU may have changed since, or the host's), or no room
    left there; None when it can."""
    host = await uow.hosts.get(vm.host_id)
    if reason := _unusable(host, f"host {vm.host_id} of VM {vm.id}"):
        return reason
    if reason := _unusable(await disk_of(uow, vm), f"disk {vm.disk_id} of VM {vm.id}"):
        return reason
    if host is not None and not serves_cpu(host, offer.cpu):
        return f"host {vm.host_id} lacks the CPU the offer of VM {vm.id} asks for"
    return await _why_no_room(uow, vm, offer.spec, now)


async def placing(
    uow: UnitOfWork, vm: Vm, now: datetime, *, deleted: bool, region: int | None
) -> Placing:
    """Where a payment brings back a VM that holds no room today: a deleted one (D24) or a
    never-paid order paid after its window (D25).

    A deleted VM comes back with what it was sold as (its template, or its custom template
    and pricing, neither gone nor disabled) on its own host and disk (neither gone nor
    disabled, the host's CPU what the offer asks for) if they have room for its whole size.
    A late order is judged on room only: its offer, host or disk disabled since does not
    stop it (its host was chosen for its offer's CPU when it was ordered), and one whose
    template row is gone has no size to judge and is set up as before.

    When its own host cannot take it (the host or its disk disabled, another CPU, or no room
    left) but another enabled host of the same region can, it moves there (`moved_to`, the
    least loaded of those whose CPU the offer asks for, as an order is placed): a revived
    VM is re-created empty with new addresses anyway (D24), and a never-paid order was
    never built. Only within `region`, the region whose lock the caller holds (the VM's
    host's), and only when the VM's offer is sold in that region; a withdrawn offer
    (template or pricing gone or disabled) of a deleted VM is never placed anew.
    """
    offer, why = await _sold_as(uow, vm)
    if offer is None:  # no size to judge: a deleted VM cannot come back, an order stays
        return Placing(why=why if deleted else None)
    if deleted and why is not None:
        return Placing(why=why)
    if deleted:
        here = await _why_not_here(uow, vm, offer, now)
    else:  # a late order is judged on room only: a host or disk disabled since keeps it
        here = await _why_no_room(uow, vm, offer.spec, now)
    if here is None:
        return Placing()
    if region is None or offer.region_id != region:
        return Placing(why=here)
    rooms = await region_rooms(uow, region, now)
    moved = best_placement(rooms, offer.spec, offer.disk_interface, cpu=offer.cpu)
    if moved is None:
        return Placing(why=f"{here}; no other host of region {region} has room for it")
    return Placing(moved_to=moved)


async def in_locked_region(uow: UnitOfWork, vm: Vm, region: int | None) -> None:
    """Nothing when this run holds the lock of the region of the VM's host (`region`), or the
    host is gone; else `RegionMoved`, so the caller's transaction starts again with that
    lock first (`app.billing.order_locks.under_region_lock`)."""
    host = await uow.hosts.get(vm.host_id)
    if host is not None:
        check_region(region, host.region_id)


async def move_vm(uow: UnitOfWork, vm: Vm, to: Placement, now: datetime) -> Vm:
    """The VM put on another host and disk of its region, with a ConfigurationChanged entry
    saying from where and why (its own host could not take it back)."""
    moved = attrs.evolve(vm, host_id=to.host.id, disk_id=to.disk.id)
    await uow.vms.update(moved)
    await uow.vm_history.add(
        vm_event(
            vm.id,
            VmHistoryActionType.CONFIGURATION_CHANGED,
            now,
            f"VM {vm.id} was moved to host {to.host.id}, disk {to.disk.id} (from host "
            f"{vm.host_id}, disk {vm.disk_id}): it could not go back where it was when it "
            "was paid for",
            before={"host_id": vm.host_id, "disk_id": vm.disk_id},
            after={"host_id": to.host.id, "disk_id": to.disk.id},
        )
    )
    return moved
