"""Free room on each enabled host for a new order: CPU, memory and disk bytes not yet reserved
by VMs, nor beyond the share never-paid orders may hold (D25)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from fractions import Fraction

import attrs

from app.billing.reserved import Usage, reserved_and_unpaid_usage
from domain.cpu_match import CpuKind, serves_cpu
from domain.enums import DiskInterface, DiskType
from domain.model import Host, HostDisk, Region
from domain.pricing import Spec
from ports.storage import UnitOfWork


@attrs.frozen
class DiskRoom:
    disk: HostDisk
    free: int


@attrs.frozen
class HostRoom:
    """What one enabled host can still take for a new order, its load factors and the share
    for never-paid orders applied (as placement does)."""

    host: Host
    cpu: int
    memory: int
    disks: tuple[DiskRoom, ...]

    def disk_free(self, kind: DiskType, interface: DiskInterface) -> int:
        """The most bytes one enabled disk of that type and interface can still take."""
        return max(
            (d.free for d in self.disks if d.disk.kind is kind and d.disk.interface is interface),
            default=0,
        )

    def fits(self, spec: Spec, interface: DiskInterface) -> bool:
        """Would a VM of this spec fit here (the rule `place_vm` applies when ordering)."""
        return (
            spec.cpu <= self.cpu
            and spec.memory <= self.memory
            and spec.disk_size <= self.disk_free(spec.disk_type, interface)
        )

    def matches_cpu(self, offer: CpuKind) -> bool:
        """The host's CPU is what the offer asks for (`serves_cpu`, as placement judges it)."""
        return serves_cpu(self.host, offer)


def _room(size: int, factor: object, used: int, unpaid: int, share: Fraction | None) -> int:
    """What a new (never-paid) order may still take of one capacity: what the reserving VMs
    leave, and no more than the share's rest (`within_host_share`, the rule placement
    applies: `unpaid + wanted <= capacity × share`, whole units)."""
    capacity = Fraction(size) * Fraction(str(factor))
    free = int(capacity) - used
    if share is not None:
        free = min(free, int(capacity * share) - unpaid)
    return max(0, free)


async def rooms_by_region(
    uow: UnitOfWork, regions: list[Region], now: datetime, unpaid_share: Fraction | None
) -> dict[int, list[HostRoom]]:
    """The free room for a new order of every enabled host of the given regions, keyed by
    region id.

    Room is what `reserved_usage` leaves, and of that no more than the never-paid orders'
    `unpaid_share` of each capacity leaves (None: no share), the rules ordering places by:
    a new order is never paid yet."""
    wanted = {r.id for r in regions}
    hosts = [h for h in await uow.hosts.list_all() if h.enabled and h.region_id in wanted]
    usage, unpaid = await reserved_and_unpaid_usage(uow, {h.id for h in hosts}, now)
    disks_of: dict[int, list[HostDisk]] = defaultdict(list)
    for row in await uow.host_disks.list_all():  # one read for every host, not one per host
        disks_of[row.host_id].append(row)
    rooms: dict[int, list[HostRoom]] = defaultdict(list)
    for host in hosts:
        rooms[host.region_id].append(
            _host_room(host, disks_of[host.id], usage[host.id], unpaid[host.id], unpaid_share)
        )
    return rooms


def _host_room(
    host: Host, disks: list[HostDisk], used: Usage, unpaid: Usage, share: Fraction | None
) -> HostRoom:
    return HostRoom(
        host=host,
        cpu=_room(host.cpu, host.load_cpu, used.cpu, unpaid.cpu, share),
        memory=_room(host.memory, host.load_memory, used.memory, unpaid.memory, share),
        disks=tuple(
            DiskRoom(d, _room(d.size, host.load_disk, used.disk[d.id], unpaid.disk[d.id], share))
            for d in disks
            if d.enabled
        ),
    )
