"""Admin hosts and their disks (api.md §9.9): stored, validated and listed with their load.

Before a row is saved, a `HostProber` may check that the host answers with its connection
settings (the test connection); reading the host's disks is a later issue. The API token
and SSH key are sealed at rest by the storage adapter (D28) and never leave through these
use cases' answers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from fractions import Fraction

import attrs

from app.admin.catalogue_common import (
    Fields,
    check_reference,
    committed,
    evolve,
    existing,
    trimmed,
)
from app.billing.errors import NotFound
from app.billing.reserved import reserved_usage
from domain.clear_text import clear_text_proxmox
from domain.errors import DomainError, InvalidInput
from domain.model import Host, HostDisk, Region
from ports.clock import Clock
from ports.storage import UnitOfWork, UnitOfWorkFactory
from ports.vmhost import HostProber, VmHostError

#: the fields a host client is built from: changing one of them means testing again
CONNECTION_FIELDS = frozenset({"kind", "ip", "name", "api_token"})


class HostUnreachable(DomainError):
    """The test connection failed: the row is not saved (422, with the host's reason)."""

    kind = "unprocessable"


async def _probe(prober: HostProber | None, host: Host) -> None:
    if prober is None:
        return
    try:
        await prober.probe(host)
    except VmHostError as exc:
        raise HostUnreachable(f"Host connection test failed: {exc.message}") from exc


@attrs.frozen
class HostLoad:
    """Share of each capacity (size × load factor) promised to live VMs, as fractions."""

    cpu: Fraction
    memory: Fraction
    disk: Fraction
    available_cpu: int
    available_memory: int
    active_vms: int

    @property
    def overall(self) -> Fraction:
        """The fullest of the three: the one that stops the next VM from fitting."""
        return max(self.cpu, self.memory, self.disk)


@attrs.frozen
class HostInfo:
    host: Host
    region: Region | None
    disks: tuple[HostDisk, ...]
    load: HostLoad


def _share(used: int, capacity: Fraction) -> Fraction:
    return Fraction(0) if capacity <= 0 else Fraction(used) / capacity


async def _infos(uow: UnitOfWork, hosts: list[Host], now: datetime) -> list[HostInfo]:
    ids = {h.id for h in hosts}
    usage = await reserved_usage(uow, ids, now)
    live: Counter[int] = Counter(v.host_id for v in await uow.vms.list_active() if v.host_id in ids)
    regions: dict[int, Region | None] = defaultdict(lambda: None)
    for region in await uow.regions.list_all():
        regions[region.id] = region
    out = []
    for host in hosts:
        disks = tuple(await uow.host_disks.list_by_host(host.id))
        cpu_cap = Fraction(host.cpu) * Fraction(str(host.load_cpu))
        mem_cap = Fraction(host.memory) * Fraction(str(host.load_memory))
        disk_cap = sum(
            (Fraction(d.size) * Fraction(str(host.load_disk)) for d in disks if d.enabled),
            Fraction(0),
        )
        used = usage[host.id]
        load = HostLoad(
            cpu=_share(used.cpu, cpu_cap),
            memory=_share(used.memory, mem_cap),
            disk=_share(sum(used.disk.values()), disk_cap),
            available_cpu=max(0, int(cpu_cap) - used.cpu),
            available_memory=max(0, int(mem_cap) - used.memory),
            active_vms=live[host.id],
        )
        out.append(HostInfo(host, regions[host.region_id], disks, load))
    return out


def _infos_at(now: datetime) -> Callable[[UnitOfWork, list[Host]], Awaitable[list[HostInfo]]]:
    """`_infos` with the time fixed, as `committed` takes it."""
    return lambda uow, hosts: _infos(uow, hosts, now)


async def list_hosts(uow_factory: UnitOfWorkFactory, clock: Clock) -> list[HostInfo]:
    async with uow_factory() as uow:
        return await _infos(uow, await uow.hosts.list_all(), clock.now())


async def _host(uow: UnitOfWork, host_id: int) -> Host:
    return await existing(uow.hosts, host_id, "Host")


async def get_host(uow_factory: UnitOfWorkFactory, clock: Clock, host_id: int) -> HostInfo:
    async with uow_factory() as uow:
        return (await _infos(uow, [await _host(uow, host_id)], clock.now()))[0]


async def _check_region(uow: UnitOfWork, region_id: int) -> None:
    await check_reference(uow.regions, region_id, "Region")


def _checked(fields: Fields) -> dict[str, object]:
    changes = dict(fields)
    for name, label in (("name", "Host name"), ("ip", "Host IP"), ("api_token", "API token")):
        if name in changes:
            changes[name] = trimmed(changes[name] or "", f"{label} cannot be empty")
    if "ssh_user" in changes:
        changes["ssh_user"] = (changes["ssh_user"] or "").strip() or None
    if "ssh_key" in changes:
        changes["ssh_key"] = (changes["ssh_key"] or "").strip() or None
    return changes


async def create_host(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    fields: Fields,
    prober: HostProber | None = None,
) -> HostInfo:
    """Store a host; with a `prober`, only one that answers (checked outside the transaction)."""
    changes = _checked(fields)
    new: Host = evolve(
        Host(
            id=0,
            kind=fields["kind"],
            region_id=fields["region_id"],
            name="",
            ip="",
            cpu=0,
            memory=0,
            enabled=True,
            api_token="",
        ),
        changes,
    )
    _check_secure_url(new)
    async with uow_factory() as uow:
        await _check_region(uow, fields["region_id"])
    await _probe(prober, new)
    async with uow_factory() as uow:
        await _check_region(uow, fields["region_id"])
        host = await uow.hosts.add(new)
        return await committed(uow, host, _infos_at(clock.now()))


async def update_host(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    host_id: int,
    fields: Fields,
    prober: HostProber | None = None,
) -> HostInfo:
    """Change a host; with a `prober`, a change of its connection fields must answer first.

    A new address or kind needs the API token in the same request (400 otherwise): the
    stored token would be sent to the new address, by the probe and then by the worker, so
    `hosts::update` alone could otherwise read the hypervisor's token off the wire."""
    changes = _checked(fields)
    async with uow_factory() as uow:
        before = await _host(uow, host_id)
    _check_token_follows(before, changes)
    if _WHERE_FIELDS & changes.keys():
        _check_secure_url(evolve(before, changes))
    if prober is not None and CONNECTION_FIELDS & changes.keys():
        await _probe(prober, evolve(before, changes))
    async with uow_factory() as uow:
        host = await _host(uow, host_id)
        _check_token_follows(host, changes)  # as stored now, not as first read
        if _WHERE_FIELDS & changes.keys():
            _check_secure_url(evolve(host, changes))
        if "region_id" in changes:
            await _check_region(uow, fields["region_id"])
        updated = evolve(host, changes)
        await uow.hosts.update(updated)
        return await committed(uow, updated, _infos_at(clock.now()))


def _check_secure_url(host: Host) -> None:
    """A Proxmox row's URL carries its API token: `https://` only (http to loopback)."""
    if clear_text_proxmox(host):
        raise InvalidInput(
            "A Proxmox host URL must use https:// (its API token would travel in clear); "
            "http:// is accepted only to a loopback address"
        )


def _check_token_follows(host: Host, changes: dict[str, object]) -> None:
    moved = any(name in changes and changes[name] != getattr(host, name) for name in _WHERE)
    if moved and "api_token" not in changes:
        raise InvalidInput("Changing a host's ip or kind needs its api_token in the same request")


#: what says where, and how, the host's API token is sent
_WHERE = ("ip", "kind")
_WHERE_FIELDS = frozenset(_WHERE)


class DiskNotFound(NotFound):
    pass


async def list_disks(uow_factory: UnitOfWorkFactory, host_id: int) -> list[HostDisk]:
    async with uow_factory() as uow:
        await _host(uow, host_id)
        return await uow.host_disks.list_by_host(host_id)


async def _disk(uow: UnitOfWork, host_id: int, disk_id: int) -> HostDisk:
    await _host(uow, host_id)
    disk = await uow.host_disks.get(disk_id)
    if disk is None:
        raise DiskNotFound("Disk not found")
    if disk.host_id != host_id:
        raise DiskNotFound(f"Disk {disk_id} does not belong to host {host_id}")
    return disk


async def get_disk(uow_factory: UnitOfWorkFactory, host_id: int, disk_id: int) -> HostDisk:
    async with uow_factory() as uow:
        return await _disk(uow, host_id, disk_id)


async def create_disk(uow_factory: UnitOfWorkFactory, host_id: int, fields: Fields) -> HostDisk:
    name = trimmed(fields.get("name") or "", "Disk name cannot be empty")
    async with uow_factory() as uow:
        await _host(uow, host_id)
        disk = await uow.host_disks.add(
            HostDisk(
                id=0,
                host_id=host_id,
                name=name,
                size=fields["size"],
                kind=fields["kind"],
                interface=fields["interface"],
                enabled=fields.get("enabled", True),
            )
        )
        await uow.commit()
    return disk


async def update_disk(
    uow_factory: UnitOfWorkFactory, host_id: int, disk_id: int, fields: Fields
) -> HostDisk:
    changes = dict(fields)
    if "name" in changes:
        changes["name"] = trimmed(changes["name"] or "", "Disk name cannot be empty")
    async with uow_factory() as uow:
        updated = evolve(await _disk(uow, host_id, disk_id), changes)
        await uow.host_disks.update(updated)
        await uow.commit()
    return updated  # type: ignore[no-any-return]
