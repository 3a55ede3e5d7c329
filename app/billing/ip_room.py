"""What an IP space holds: ranges in use and never-paid orders within their hold (D25)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime

import attrs

from app.billing.reserved import UNPAID_HOLD_LIMIT, order_lapsed
from domain.errors import DomainError
from domain.ip_blocks import Block, fits, free_blocks, overlaps, parse_block
from domain.model import AvailableIpSpace, IpSpacePricing, LineItem, Subscription
from domain.unpaid_ip_room import (
    UnpaidIpRoom,
    block_size,
    check_unpaid_ip_budget,
    within_space_share,
)
from ports.storage import UnitOfWork


class NoIpRangeLeft(DomainError):
    """The IP space has no free block of the size sold, or is no longer sold (422)."""


class SpacesToLock(Exception):
    """The transaction must hold these IP spaces' locks, taken before its first plain read
    (MariaDB's snapshot): it is run again with them (a booking, an order)."""

    def __init__(self, space_ids: frozenset[int]) -> None:
        super().__init__(sorted(space_ids))
        self.space_ids = space_ids


@attrs.frozen
class RangeAsked:
    """What one IP-range line item sells: a block of `/prefix` from space `space_id`."""

    space_id: int
    prefix: int


@attrs.frozen
class HeldRange:
    """A block of `/prefix` of space `space_id` a never-paid order of user `user_id` holds."""

    space_id: int
    prefix: int
    user_id: int


def range_asked(item: LineItem) -> RangeAsked | None:
    """The space and prefix size the line item sells, from the configuration an order writes
    (`available_ip_space_id`, `prefix_size`); None when it names none (a line item an
    admin wrote by hand)."""
    config = item.configuration
    if not isinstance(config, dict):
        return None
    space, prefix = config.get("available_ip_space_id"), config.get("prefix_size")
    if type(space) is not int or type(prefix) is not int:
        return None
    return RangeAsked(space_id=space, prefix=prefix)


def related_spaces(spaces: Mapping[int, AvailableIpSpace], ids: Iterable[int]) -> frozenset[int]:
    """These spaces and every space whose CIDR overlaps one of theirs: a block given from one
    must not overlap a range given from another (an operator may list a block and a part of
    it as two spaces). An id without a row stays in (its ranges are still judged)."""
    wanted = set(ids)
    nets = [net for i in wanted if i in spaces and (net := parse_block(spaces[i].cidr))]
    for space in spaces.values():
        net = parse_block(space.cidr)
        if net is not None and any(overlaps(net, other) for other in nets):
            wanted.add(space.id)
    return frozenset(wanted)


async def holds_room(
    uow: UnitOfWork, sub: Subscription, now: datetime, *, held_until_now: bool = False
) -> bool:
    """Whether `sub` is a never-paid order whose room is still held for it (its payment
    window, or a payment asked for within it and still pending, never past
    `UNPAID_HOLD_LIMIT`): the same hold as a VM order's (`order_lapsed`)."""
    if sub.in_service:
        return False
    return not await order_lapsed(uow, sub, now, held_until_now=held_until_now)


async def held_by_orders(uow: UnitOfWork, now: datetime, *, but: int | None) -> list[HeldRange]:
    """What never-paid orders (all but subscription `but`) hold now: a block of each IP-range
    line item of every order within its hold (`holds_room`). Orders older than
    `UNPAID_HOLD_LIMIT` are not read; a few of those within it one more statement each."""
    held: list[HeldRange] = []
    for sub, items in await uow.ip_range_subscriptions.never_paid_orders(now - UNPAID_HOLD_LIMIT):
        if sub.id == but or not await holds_room(uow, sub, now):
            continue
        for item in items:
            if (asked := range_asked(item)) is not None:
                held.append(HeldRange(asked.space_id, asked.prefix, sub.user_id))
    return held


def _addresses(
    spaces: Mapping[int, AvailableIpSpace], held: Iterable[RangeAsked | HeldRange]
) -> dict[int, int]:
    """The addresses these blocks hold, by IP version (a block of a space gone or unparsed
    counts nothing)."""
    total: dict[int, int] = {}
    for h in held:
        space = spaces.get(h.space_id)
        net = None if space is None else parse_block(space.cidr)
        if net is not None and net.prefixlen <= h.prefix <= net.max_prefixlen:
            total[net.version] = total.get(net.version, 0) + block_size(net.version, h.prefix)
    return total


def unsellable(space: AvailableIpSpace, prefix: int) -> str | None:
    """Why no new block of `/prefix` can be given from `space` (None: it can be tried): the
    space is no longer offered (unavailable or reserved), or cannot hold the size."""
    if not space.is_available or space.is_reserved:
        return f"IP space {space.cidr} is not available for allocation"
    net = parse_block(space.cidr)
    if net is None or not net.prefixlen <= prefix <= net.max_prefixlen:
        return f"IP space {space.cidr} cannot hold a /{prefix} block"
    return None


async def pool_blocks(uow: UnitOfWork) -> list[Block]:
    """The VM address pools (every `ip_range` row, enabled or not): never part of a block
    sold, since the build hands their addresses to VMs. A disabled pool counts too: its VMs
    keep the addresses they were given, and the operator may turn it back on."""
    return [net for r in await uow.ip_ranges.list_all() if (net := parse_block(r.cidr))]


async def taken_blocks(
    uow: UnitOfWork, space_ids: Collection[int], *, but_item: int | None = None
) -> list[Block]:
    """The blocks of the ranges in use in these spaces (`list_live_in_spaces`), but those of
    line item `but_item` (its own range, being judged). The VM address pools are not
    among them (`pool_blocks`, read once by the caller)."""
    live = await uow.ip_range_subscriptions.list_live_in_spaces(space_ids)
    return [
        net
        for r in live
        if r.subscription_line_item_id != but_item and (net := parse_block(r.cidr)) is not None
    ]


async def check_order_room(
    uow: UnitOfWork,
    priced: Sequence[tuple[IpSpacePricing, AvailableIpSpace]],
    now: datetime,
    locked: frozenset[int],
    *,
    user_id: int,
    limits: UnpaidIpRoom,
) -> None:
    """Refuse a new order of user `user_id` (422) whose blocks would take what the user's
    never-paid orders hold past `limits`' per-user budget (`UnpaidIpRoomExceeded`), or do
    not all fit in their spaces (`NoIpRangeLeft`) beside the ranges in use, the VM address
    pools (`pool_blocks`) and what other never-paid orders hold (`held_by_orders`), or
    would take the never-paid orders of a space past `limits.space_share` of it (the same
    answer as a full space, as a VM order past the host share gets a full region's).

    The order then holds its room through its payment window (D25), so paid in time it is
    always given its block, and unpaid orders hold room only for as long as a VM order
    does. Judged under the buyer's lock (taken by the caller) and the spaces' locks
    (`SpacesToLock` when `locked` lacks one), so two orders never both count on the last
    block, nor one buyer's two orders on the last of its budget."""
    spaces = {s.id: s for s in await uow.ip_spaces.list_all()}
    needed = related_spaces(spaces, {space.id for _, space in priced})
    if not needed <= locked:
        raise SpacesToLock(needed | locked)
    held = await held_by_orders(uow, now, but=None)
    for tier, space in priced:
        why = unsellable(space, tier.prefix_size)
        if why is not None:
            raise NoIpRangeLeft(f"This IP range cannot be sold: {why}")
    wanted = [RangeAsked(space.id, tier.prefix_size) for tier, space in priced]
    check_unpaid_ip_budget(
        limits,
        _addresses(spaces, [h for h in held if h.user_id == user_id]),
        _addresses(spaces, wanted),
    )
    taken = [*await taken_blocks(uow, needed), *await pool_blocks(uow)]
    for space in {space.id: space for _, space in priced}.values():
        asked = [tier.prefix_size for tier, sold in priced if sold.id == space.id]
        net = parse_block(space.cidr)
        assert net is not None  # `unsellable` parsed it
        free = free_blocks(net, [b for b in taken if overlaps(b, net)])
        others = [h.prefix for h in held if h.space_id == space.id]
        unpaid = sum(block_size(net.version, p) for p in others)
        asking = sum(block_size(net.version, p) for p in asked)
        share = limits.space_share
        if not (
            fits(free, [*others, *asked])
            and within_space_share(unpaid, asking, net.num_addresses, share)
        ):
            sizes = " and ".join(f"/{p}" for p in sorted(set(asked)))
            raise NoIpRangeLeft(
                f"No free {sizes} range is left in this IP space: try again later or choose "
                "another size"
            )
