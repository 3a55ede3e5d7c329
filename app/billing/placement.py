"""Host capacity of a region and where a newly ordered VM goes (lifecycle.md §6.1, api.md 8.7)."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction

import attrs

from app.billing.errors import NoHostAvailable
from app.billing.reserved import Usage, reserved_usage
from domain.enums import DiskInterface
from domain.model import Host, HostDisk, Vm
from domain.pricing import Spec
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

    @property
    def free(self) -> int:
        return max(0, int(self.capacity - self.used))


@attrs.frozen
class Room:
    """An enabled host: capacities (size × load factor) and what its live VMs already use."""

    host: Host
    cpu_capacity: Fraction
    memory_capacity: Fraction
    used_cpu: int
    used_memory: int
    disks: tuple[DiskRoom, ...]

    @property
    def free_cpu(self) -> int:
        return max(0, int(self.cpu_capacity - self.used_cpu))

    @property
    def free_memory(self) -> int:
        return max(0, int(self.memory_capacity - self.used_memory))


def _capacity(size: int, factor: object) -> Fraction:
    return Fraction(size) * Fraction(str(factor))


def _room(host: Host, used: Usage, disks: list[HostDisk]) -> Room:
    return Room(
        host=host,
        cpu_capacity=_capacity(host.cpu, host.load_cpu),
        memory_capacity=_capacity(host.memory, host.load_memory),
        used_cpu=used.cpu,
        used_memory=used.memory,
        disks=tuple(
            DiskRoom(disk, _capacity(disk.size, host.load_disk), used.disk[disk.id])
            for disk in disks
        ),
    )


async def region_rooms(uow: UnitOfWork, region_id: int, now: datetime) -> list[Room]:
    """The enabled hosts of an enabled region with their enabled disks; [] otherwise."""
    region = await uow.regions.get(region_id)
    if region is None or not region.enabled:
        return []
    hosts = [h for h in await uow.hosts.list_by_region(region_id) if h.enabled]
    usage = await reserved_usage(uow, {h.id for h in hosts}, now)
    rooms = []
    for host in hosts:
        disks = [d for d in await uow.host_disks.list_by_host(host.id) if d.enabled]
        rooms.append(_room(host, usage[host.id], disks))
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
    rooms: list[Room], spec: Spec, disk_interface: DiskInterface
) -> Placement | None:
    """The least-loaded room that fits the spec, or None.

    A host fits when it has an enabled disk of the spec's type and interface and, counting
    the VMs already reserving room there, CPU, memory and that disk stay within their size × load
    factor. Load is the highest of the three shares; ties go to the lowest host id.
    """
    best: tuple[Fraction, int, Placement] | None = None
    for room in rooms:
        cpu = _share(room.used_cpu, spec.cpu, room.cpu_capacity)
        memory = _share(room.used_memory, spec.memory, room.memory_capacity)
        if cpu is None or memory is None:
            continue
        for disk in room.disks:
            if disk.disk.kind is not spec.disk_type or disk.disk.interface is not disk_interface:
                continue
            share = _share(disk.used, spec.disk_size, disk.capacity)
            if share is None:
                continue
            load = max(cpu, memory, share)
            if best is None or (load, room.host.id) < best[:2]:
                best = (load, room.host.id, Placement(room.host, disk.disk))
    return None if best is None else best[2]


async def place_vm(
    uow: UnitOfWork, region_id: int, spec: Spec, disk_interface: DiskInterface, now: datetime
) -> Placement:
    """Where a new VM of this spec goes in the region; `NoHostAvailable` when nowhere."""
    rooms = await region_rooms(uow, region_id, now)
    placement = best_placement(rooms, spec, disk_interface)
    if placement is None:
        raise NoHostAvailable(NO_HOST)
    return placement
