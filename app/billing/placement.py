"""Choose the host and disk a newly ordered VM will live on (lifecycle.md §6.1 step 3)."""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

import attrs

from app.billing.errors import NoHostAvailable
from domain.enums import DiskInterface
from domain.model import Host, HostDisk, Vm
from domain.pricing import Spec
from ports.storage import UnitOfWork

NO_HOST = "No available hosts found"


@attrs.frozen
class Placement:
    host: Host
    disk: HostDisk


@attrs.define
class _Usage:
    cpu: int = 0
    memory: int = 0
    disk: dict[int, int] = attrs.field(factory=lambda: defaultdict(int))


_SpecCache = dict[tuple[str, int], Spec | None]


async def _spec_of(uow: UnitOfWork, vm: Vm, cache: _SpecCache) -> Spec | None:
    if vm.template_id is not None:
        key = ("t", vm.template_id)
        if key not in cache:
            cache[key] = await uow.templates.get(vm.template_id)
    elif vm.custom_template_id is not None:
        key = ("c", vm.custom_template_id)
        if key not in cache:
            cache[key] = await uow.custom_templates.get(vm.custom_template_id)
    else:
        return None
    return cache[key]


async def _usage(uow: UnitOfWork, host_ids: set[int]) -> dict[int, _Usage]:
    """CPU, memory and per-disk bytes already promised to the hosts' live VMs."""
    usage: dict[int, _Usage] = defaultdict(_Usage)
    cache: _SpecCache = {}
    for vm in await uow.vms.list_active():
        if vm.host_id not in host_ids:
            continue
        spec = await _spec_of(uow, vm, cache)
        if spec is None:
            continue
        used = usage[vm.host_id]
        used.cpu += spec.cpu
        used.memory += spec.memory
        used.disk[vm.disk_id] += spec.disk_size
    return usage


def _share(used: int, wanted: int, size: int, factor: object) -> Fraction | None:
    """Fraction of the (over-committed) capacity in use after placing; None when it won't fit."""
    capacity = Fraction(size) * Fraction(str(factor))
    if capacity <= 0 or used + wanted > capacity:
        return None
    return (used + wanted) / capacity


async def place_vm(
    uow: UnitOfWork, region_id: int, spec: Spec, disk_interface: DiskInterface
) -> Placement:
    """The least-loaded enabled host of an enabled region that fits the spec.

    A host fits when it has an enabled disk of the spec's type and interface and, counting
    the live VMs already there, CPU, memory and that disk stay within their size × load
    factor. Load is the highest of the three shares; ties go to the lowest host id.
    """
    region = await uow.regions.get(region_id)
    if region is None or not region.enabled:
        raise NoHostAvailable(NO_HOST)
    hosts = [h for h in await uow.hosts.list_by_region(region_id) if h.enabled]
    usage = await _usage(uow, {h.id for h in hosts})
    best: tuple[Fraction, int, Placement] | None = None
    for host in hosts:
        used = usage[host.id]
        cpu = _share(used.cpu, spec.cpu, host.cpu, host.load_cpu)
        memory = _share(used.memory, spec.memory, host.memory, host.load_memory)
        if cpu is None or memory is None:
            continue
        for disk in await uow.host_disks.list_by_host(host.id):
            if not disk.enabled or disk.kind is not spec.disk_type:
                continue
            if disk.interface is not disk_interface:
                continue
            share = _share(used.disk[disk.id], spec.disk_size, disk.size, host.load_disk)
            if share is None:
                continue
            load = max(cpu, memory, share)
            if best is None or (load, host.id) < best[:2]:
                best = (load, host.id, Placement(host, disk))
    if best is None:
        raise NoHostAvailable(NO_HOST)
    return best[2]
