"""Sequential IP allocation from a region's ranges for the spawn pipeline (§10.3 step 1)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

from domain.errors import DomainError
from domain.model import IpAssignment, IpRange
from ports.storage import UnitOfWork

IpAddr = ipaddress.IPv4Address | ipaddress.IPv6Address

#: IPv6 addresses tried per range before giving up (a /64 is never scanned whole).
MAX_V6_PROBES = 65_536


class NoIpv4Available(DomainError):
    """The region has no free IPv4 address: the VM cannot be provisioned (fatal)."""


def _gateway(range_: IpRange) -> IpAddr | None:
    try:
        return ipaddress.ip_interface(range_.gateway.strip()).ip
    except ValueError:
        return None


def candidates(range_: IpRange) -> Iterator[IpAddr]:
    """The range's assignable addresses in order: network, broadcast and gateway skipped.

    With `use_full_range` the network and broadcast addresses are assignable too (routed
    ranges); the gateway never is.
    """
    network = ipaddress.ip_network(range_.cidr.strip(), strict=False)
    gateway = _gateway(range_)
    pool: Iterator[IpAddr] = iter(network) if range_.use_full_range else network.hosts()
    probes = 0
    for address in pool:
        if address == gateway:
            continue
        if network.version == 6:
            probes += 1
            if probes > MAX_V6_PROBES:
                return
        yield address


async def used_addresses(uow: UnitOfWork, range_ids: set[int]) -> set[str]:
    """Addresses held by live assignments of live VMs in these ranges.

    The storage port has no per-range query, so this walks the live VMs' assignments.
    """
    used: set[str] = set()
    for vm in await uow.vms.list_active():
        for assignment in await uow.ip_assignments.list_by_vm(vm.id):
            if assignment.ip_range_id in range_ids:
                used.add(_normal(assignment.ip))
    return used


def _normal(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip.split("/")[0].strip()))
    except ValueError:
        return ip


def pick(ranges: Sequence[IpRange], used: set[str], vm_id: int) -> list[IpAssignment]:
    """One IPv4 (required) and, when the region has an IPv6 range, one IPv6, first free.

    Enabled ranges are tried in ascending id; the result is unsaved (id 0).
    """
    chosen: list[IpAssignment] = []
    for version in (4, 6):
        for range_ in sorted((r for r in ranges if r.enabled), key=lambda r: r.id):
            if ipaddress.ip_network(range_.cidr.strip(), strict=False).version != version:
                continue
            free = next((a for a in candidates(range_) if str(a) not in used), None)
            if free is not None:
                chosen.append(IpAssignment(id=0, vm_id=vm_id, ip_range_id=range_.id, ip=str(free)))
                break
        if version == 4 and not chosen:
            raise NoIpv4Available("Cannot provision VM without an IPv4 address")
    return chosen
