"""Whether a region's IPv4 pool has an address left for one more VM (D25 room, addresses)."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from fractions import Fraction

from app.billing.reserved import lapsed_unpaid_vms
from domain.model import IpRange, Vm
from ports.storage import UnitOfWork


def assignable_ipv4(range_: IpRange) -> int:
    """How many addresses the build can give out of an IPv4 range (0 for IPv6 or a CIDR
    that does not parse): the spawn's `pick` order, network and broadcast skipped unless
    `use_full_range` (or a /31, /32), the gateway never given."""
    try:
        network = ipaddress.ip_network(range_.cidr.strip(), strict=False)
    except ValueError:
        return 0
    if not isinstance(network, ipaddress.IPv4Network):
        return 0
    whole = range_.use_full_range or network.prefixlen >= 31
    ends = {network.network_address, network.broadcast_address}
    count = network.num_addresses if whole else network.num_addresses - 2
    try:
        gateway = ipaddress.ip_interface(range_.gateway.strip()).ip
    except ValueError:
        return count
    if gateway in network and (whole or gateway not in ends):
        count -= 1
    return max(0, count)


async def ipv4_left(
    uow: UnitOfWork,
    region_id: int,
    now: datetime,
    for_vm: int | None,
    *,
    unpaid_share: Fraction | None = None,
) -> int:
    """The region's IPv4 addresses no VM holds or will need, `for_vm` left out of the VMs
    that will need one.

    Will need one: every live VM on the region's hosts (enabled or not) without a live
    address, as the build gives it one (`app.worker.addresses.pick`): paid VMs waiting to
    be built and never-paid orders holding room (the same rule as CPU, memory and disk:
    an order past its window holds nothing, `lapsed_unpaid_vms`). The addresses are the
    enabled IPv4 ranges' assignable ones less those live VMs hold there.

    `unpaid_share`: the caller is a new, never-paid order (D25, r5): never-paid orders
    together may also be promised at most that part of the assignable addresses (rounded
    down, but at least one: a region of one or two addresses can still be ordered from),
    so free keys cannot take every address of a region; what is left is then the lesser
    of the two. None: a paid VM, held to the pool alone."""
    ranges = [r for r in await uow.ip_ranges.list_by_region(region_id) if r.enabled]
    usable = {r.id: assignable_ipv4(r) for r in ranges}
    v4 = {range_id for range_id, n in usable.items() if n > 0}
    hosts = {h.id for h in await uow.hosts.list_by_region(region_id)}
    use = await uow.ip_assignments.address_use(hosts, v4)
    waiting = set(use.unaddressed) - {for_vm}
    if waiting:  # a lapsed order is never built, so only ever among the unaddressed
        waiting -= {vm.id for vm in await lapsed_unpaid_vms(uow, now)}
    total = sum(usable.values())
    left = total - use.held - len(waiting)
    if unpaid_share is None:
        return left
    unpaid = waiting & {vm.id for vm in await uow.vms.list_never_paid() if vm.host_id in hosts}
    return min(left, max(1, int(total * unpaid_share)) - len(unpaid))


async def why_no_address(uow: UnitOfWork, vm: Vm, now: datetime) -> str | None:
    """Why a payment that starts a VM's service cannot be booked for want of an IPv4
    address (None: the VM holds one, or its host's region has one left for it beside every
    VM waiting for one).

    Which payments ask (the caller, completion's `_placing`): the first payment of an order
    (in its window or late) and a payment that revives a deleted VM, the two that make a VM
    the build must give an address. A renewal of a live VM never asks, built or not: built,
    it holds its addresses; paid and still waiting for its build, its address has been
    counted as promised since its order (`ipv4_left` counts every live VM without one), so
    the renewal takes nothing more. Should its build find none all the same (an operator
    shrank or disabled a range since), that is the build's failure the admins are told of,
    and the VM check builds it once there is an address; crediting the renewal would not
    build it sooner. Test worlds follow the same rule: their regions have an IPv4 range, as
    a region whose VMs are built must."""
    if await uow.ip_assignments.list_by_vm(vm.id):
        return None
    host = await uow.hosts.get(vm.host_id)
    if host is None or await ipv4_left(uow, host.region_id, now, vm.id) > 0:
        return None
    return f"region {host.region_id} has no IPv4 address left for VM {vm.id}"
