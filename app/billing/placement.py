"""Host capacity of a region and where a newly ordered VM goes (lifecycle.md §6.1, api.md 8.7)."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction

import attrs

from app.billing.address_room import ipv4_left
from app.billing.errors import NoHostAvailable
from app.billing.reserved import Usage, reserved_and_unpaid_usage, reserved_usage
from domain.cpu_match import CpuKind, serves_cpu
from domain.enums import DiskInterface
from domain.model import Host, HostDisk, Vm
from domain.pricing import Spec
from domain.unpaid_room import within_host_share
from ports.storage import UnitOfWork

NO_HOST = "No available hosts found"


@attrs.frozen
class Placement:
    host: Host
    disk: HostDisk


@attrs.frozen
class DiskRoom:
    disk: HostDisk
    capacity: Fraction
    used: int
    #: the part of `used` never-paid orders hold (D25 host share)
    unpaid: int = 0

    @property
    def free(self) -> int:
        return max(0, int(self.capacity - self.used))


@attrs.frozen
class Room:
    """An enabled host: capacities (size × load factor), what its live VMs already use, and
    the part of that never-paid orders hold (`unpaid_*`, D25 host share)."""

    host: Host
    cpu_capacity: Fraction
    memory_capacity: Fraction
    used_cpu: int
    used_memory: int
    disks: tuple[DiskRoom, ...]
    unpaid_cpu: int = 0
    unpaid_memory: int = 0

    @property
    def free_cpu(self) -> int:
        return max(0, int(self.cpu_capacity - self.used_cpu))

    @property
    def free_memory(self) -> int:
        return max(0, int(self.memory_capacity - self.used_memory))


def _capacity(size: int, factor: object) -> Fraction:
    return Fraction(size) * Fraction(str(factor))


def _room(host: Host, used: Usage, disks: list[HostDisk], unpaid: Usage | None = None) -> Room:
    unpaid = Usage() if unpaid is None else unpaid
    return Room(
        host=host,
        cpu_capacity=_capacity(host.cpu, host.load_cpu),
        memory_capacity=_capacity(host.memory, host.load_memory),
        used_cpu=used.cpu,
        used_memory=used.memory,
        disks=tuple(
            DiskRoom(
                disk, _capacity(disk.size, host.load_disk), used.disk[disk.id], unpaid.disk[disk.id]
            )
            for disk in disks
        ),
        unpaid_cpu=unpaid.cpu,
        unpaid_memory=unpaid.memory,
    )


async def region_rooms(uow: UnitOfWork, region_id: int, now: datetime) -> list[Room]:
    """The enabled hosts of an enabled region with their enabled disks, and what never-paid
    orders hold on them; [] otherwise."""
    region = await uow.regions.get(region_id)
    if region is None or not region.enabled:
        return []
    hosts = [h for h in await uow.hosts.list_by_region(region_id) if h.enabled]
    usage, unpaid = await reserved_and_unpaid_usage(uow, {h.id for h in hosts}, now)
    rooms = []
    for host in hosts:
        disks = [d for d in await uow.host_disks.list_by_host(host.id) if d.enabled]
        rooms.append(_room(host, usage[host.id], disks, unpaid[host.id]))
    return rooms


async def disk_of(uow: UnitOfWork, vm: Vm) -> HostDisk | None:
    """The host disk the VM lives on, enabled or not; None when its row is gone."""
    return next(
        (d for d in await uow.host_disks.list_by_host(vm.host_id) if d.id == vm.disk_id), None
    )


async def has_room_to_grow(
    uow: UnitOfWork, vm: Vm, before: Spec, after: Spec, now: datetime
) -> bool:
    """Whether the VM's own host and disk can take it growing from `before` to `after`: the
    growth fits within each capacity (size × load factor) beside what the host's VMs hold
    already, this VM's current size among them. Judged on the VM's host and disk as they
    are, enabled or not (the VM lives there); a host or disk row that is gone has no room."""
    host = await uow.hosts.get(vm.host_id)
    disk = None if host is None else await disk_of(uow, vm)
    if host is None or disk is None:
        return False
    room = _room(host, (await reserved_usage(uow, {host.id}, now))[host.id], [disk])
    grows = (
        (room.used_cpu, after.cpu - before.cpu, room.cpu_capacity),
        (room.used_memory, after.memory - before.memory, room.memory_capacity),
        (room.disks[0].used, after.disk_size - before.disk_size, room.disks[0].capacity),
    )
    return all(wanted <= 0 or _share(used, wanted, cap) is not None for used, wanted, cap in grows)


def _share(used: int, wanted: int, capacity: Fraction) -> Fraction | None:
    """Fraction of the capacity in use after placing; None when it won't fit."""
    if capacity <= 0 or used + wanted > capacity:
        return None
    return (used + wanted) / capacity


def best_placement(
    rooms: list[Room],
    spec: Spec,
    disk_interface: DiskInterface,
    unpaid_share: Fraction | None = None,
    *,
    cpu: CpuKind,
) -> Placement | None:
    """The least-loaded room that fits the spec, or None.

    A host fits when its CPU is what the offer asks for (`cpu`: the template's or custom
    template's maker, architecture and features, `serves_cpu`, the rule the catalogue lists
    by), it has an enabled disk of the spec's type and interface and, counting the VMs
    already reserving room there, CPU, memory and that disk stay within their size × load
    factor. Load is the highest of the three shares; ties go to the lowest host id.

    `unpaid_share`: the VM is a new, never-paid order (D25): a host fits only when the
    never-paid orders there, this one included, also stay within that part of each
    capacity (`UnpaidRoom.host_share`), so the rest stays free for paid work. None: a paid
    VM (placed again when its late payment comes), held to capacity alone.
    """
    best: tuple[Fraction, int, Placement] | None = None
    for room in rooms:
        if not serves_cpu(room.host, cpu):
            continue
        cores = _share(room.used_cpu, spec.cpu, room.cpu_capacity)
        memory = _share(room.used_memory, spec.memory, room.memory_capacity)
        if cores is None or memory is None:
            continue
        if not (
            within_host_share(room.unpaid_cpu, spec.cpu, room.cpu_capacity, unpaid_share)
            and within_host_share(
                room.unpaid_memory, spec.memory, room.memory_capacity, unpaid_share
            )
        ):
            continue
        for disk in room.disks:
            if disk.disk.kind is not spec.disk_type or disk.disk.interface is not disk_interface:
                continue
            share = _share(disk.used, spec.disk_size, disk.capacity)
            if share is None:
                continue
            if not within_host_share(disk.unpaid, spec.disk_size, disk.capacity, unpaid_share):
                continue
            load = max(cores, memory, share)
            if best is None or (load, room.host.id) < best[:2]:
                best = (load, room.host.id, Placement(room.host, disk.disk))
    return None if best is None else best[2]


async def place_vm(
    uow: UnitOfWork,
    region_id: int,
    spec: Spec,
    disk_interface: DiskInterface,
    now: datetime,
    *,
    unpaid_share: Fraction | None,
    cpu: CpuKind,
) -> Placement:
    """Where a new order of this spec goes in the region (`best_placement`: a host whose CPU
    is what the offer asks for, `cpu`, the never-paid orders held to `unpaid_share` of
    each host); `NoHostAvailable` when nowhere, the same answer whether no host of that
    CPU is there, the hosts are full, their share for unpaid orders is (D25), or the
    region's IPv4 addresses are all held or promised (`ipv4_left`: a VM is never built
    without one, so an order that would be paid and never built is refused now), or the
    same `unpaid_share` of them is promised to never-paid orders already."""
    rooms = await region_rooms(uow, region_id, now)
    placement = best_placement(rooms, spec, disk_interface, unpaid_share, cpu=cpu)
    if placement is None:
        raise NoHostAvailable(NO_HOST)
    if await ipv4_left(uow, region_id, now, None, unpaid_share=unpaid_share) < 1:
        raise NoHostAvailable(NO_HOST)
    return placement
