"""A VM's assigned addresses with their prefix and gateway, as both cloud-init writers use them."""

from __future__ import annotations

import ipaddress

import attrs

from domain.enums import IpRangeAllocationMode
from ports.vmhost import FullVmInfo


@attrs.frozen
class AssignedIp:
    """One assigned address. IPv4 takes the wider of the range's and the gateway's prefixes;
    `slaac` marks an IPv6 address in a SLAAC range (the guest configures itself)."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    prefix: int
    gateway: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    slaac: bool


def assigned_ips(info: FullVmInfo) -> list[AssignedIp]:
    """The VM's addresses in assignment order; one whose range is unknown is skipped."""
    ranges = {r.id: r for r in info.ranges}
    found: list[AssignedIp] = []
    for assignment in info.ips:
        ip_range = ranges.get(assignment.ip_range_id)
        if ip_range is None:
            continue
        addr = ipaddress.ip_address(assignment.ip.split("/")[0])
        net = ipaddress.ip_network(ip_range.cidr, strict=False)
        gateway = ipaddress.ip_interface(ip_range.gateway)
        prefix = net.prefixlen
        if addr.version == 4:
            prefix = min(prefix, gateway.network.prefixlen)
        slaac = addr.version == 6 and (
            ip_range.allocation_mode is IpRangeAllocationMode.SLAAC_EUI64
        )
        found.append(AssignedIp(address=addr, prefix=prefix, gateway=gateway, slaac=slaac))
    return found
