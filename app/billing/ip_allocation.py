"""Give each paid IP-range line item its block of addresses, in the payment's booking.

The reference took the money and allocated nothing (api.md §6.10, §12.4). Here the booking of
a Purchase or Renewal plans, for each IP-range line item without an active range: the
range(s) the current lapse ended come back on, when nobody else holds their addresses now;
otherwise a new block of the size sold is taken from its space (`domain.ip_blocks`). When an
item can get neither, the plan says why and the whole payment becomes account credit, as
for a VM that cannot be restored (`app.billing.completion`). The same plan, made without the
locks, is a quote's check (`refuse_without_room`): a sale with no room is refused before
money is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from app.billing.ip_room import (
    HeldRange,
    NoIpRangeLeft,
    RangeAsked,
    SpacesToLock,
    held_by_orders,
    holds_room,
    pool_blocks,
    range_asked,
    related_spaces,
    taken_blocks,
    unsellable,
)
from domain.enums import SubscriptionPaymentType, SubscriptionType
from domain.ip_blocks import Block, best_block, fits, free_blocks, overlaps, parse_block
from domain.model import AvailableIpSpace, IpRangeSubscription, LineItem, Subscription
from ports.storage import UnitOfWork

#: how every reason a payment could not be given its IP range begins (the admins' notice)
WHY_PREFIX = "IP range: "

#: what the payer of such a payment is told (after "Your payment of … for subscription …")
PAYER_NOTE = (
    "arrived when the IP range it pays for could not be given: its IP space has no free "
    "block of that size left, or is no longer offered. No time was bought"
)


@attrs.frozen
class RangePlan:
    """What a booking does to IP ranges: ranges turned back on, rows of new blocks to add,
    or why it can do neither for some item (`why`: nothing is done, the payment becomes
    credit). `problems`: items it cannot judge (no space named), for the admins."""

    reactivate: tuple[int, ...] = ()
    allocate: tuple[IpRangeSubscription, ...] = ()
    why: str | None = None
    problems: tuple[str, ...] = ()


@attrs.frozen
class _Item:
    item: LineItem
    lapsed: tuple[IpRangeSubscription, ...]
    asked: RangeAsked | None


async def _lapse_began(uow: UnitOfWork, sub: Subscription, paying: bytes | None) -> datetime:
    """When the current allocation was last given or turned back on: the booking of the
    subscription's last payment that bought time (a Purchase or Renewal not booked as
    credit, but the one being booked, `paying`), else when it was made. Every range active
    then is the current allocation; one ended before it is of an earlier lapse."""
    began = sub.created
    for paid in (await uow.payments.paid_tally(sub.id)).paid:
        if paid.id == paying or paid.payment_type is SubscriptionPaymentType.UPGRADE:
            continue
        if paid.time_value is not None and paid.time_value <= 0:
            continue  # bought no time (booked as credit): it gave back no range
        began = max(began, paid.paid_at or paid.created)
    return began


async def _unserved(
    uow: UnitOfWork,
    sub: Subscription,
    items: Sequence[LineItem],
    paying: bytes | None,
    lapsed_only: bool = False,
) -> list[_Item]:
    """The IP-range items with no active range, each with the ranges ended in the current
    lapse (`_lapse_began`): at expiry, or when the subscription or its VM was deleted. One
    ended in an earlier lapse (its block given to someone else meanwhile, so the line item
    got another one), or by an operator before the last payment, never comes back.
    `lapsed_only`: only the items with such a range (the others never had one to give back)."""
    began: datetime | None = None
    out = []
    for item in items:
        if item.subscription_type is not SubscriptionType.IP_RANGE:
            continue
        ranges = await uow.ip_range_subscriptions.list_by_line_item(item.id)
        if any(r.is_active for r in ranges):
            continue
        ended = [r for r in ranges if r.ended_at is not None]
        if ended and began is None:
            began = await _lapse_began(uow, sub, paying)
        lapsed = tuple(
            r for r in ended if began is not None and r.ended_at is not None and r.ended_at >= began
        )
        if lapsed or not lapsed_only:
            out.append(_Item(item, lapsed, range_asked(item)))
    return out


def _asked(work: _Item) -> RangeAsked | None:
    """What a new block must be: the line item's own order, else the size and space of the
    range it had (a hand-written line item that was given one)."""
    if work.asked is not None:
        return work.asked
    for r in reversed(work.lapsed):
        net = parse_block(r.cidr)
        if net is not None:
            return RangeAsked(space_id=r.available_ip_space_id, prefix=net.prefixlen)
    return None


async def plan_ranges(
    uow: UnitOfWork,
    sub: Subscription,
    items: Sequence[LineItem],
    now: datetime,
    locked: frozenset[int] | None,
    *,
    paying: bytes | None = None,
    held_until_now: bool = False,
    lapsed_only: bool = False,
) -> RangePlan:
    """The plan for a Purchase or Renewal of `sub` paid now (see the module's docstring).

    `locked`: the spaces whose locks the booking holds; when the plan needs another one
    (the item's space, or one overlapping it) it raises `SpacesToLock`, before reading what
    the spaces hold. None: a quote's check, made without locks. `paying`: the payment being
    booked (already marked paid in this transaction). A new block is the tightest
    free one (`best_block`); unless `sub` is a never-paid order whose room is held
    (`holds_room`; `held_until_now`: its payment being booked was pending until now), it
    must also leave room for every order that holds some (`held_by_orders`), as a late VM
    payment leaves the room of orders within their window. `lapsed_only`: plan only the
    items that had a range the current lapse ended (`give_back_lapsed`).
    """
    work = await _unserved(uow, sub, items, paying, lapsed_only)
    if not work:
        return RangePlan()
    spaces = {s.id: s for s in await uow.ip_spaces.list_all()}
    wanted = {r.available_ip_space_id for w in work for r in w.lapsed}
    wanted |= {a.space_id for w in work if (a := _asked(w)) is not None}
    needed = related_spaces(spaces, wanted)
    if locked is not None and not needed <= locked:
        raise SpacesToLock(needed | locked)
    planner = _Planner(uow, sub, now, spaces, needed, held_until_now)
    reactivate: list[int] = []
    allocate: list[IpRangeSubscription] = []
    problems: list[str] = []
    for w in work:
        back = await planner.back_on(w)
        if back:
            reactivate.extend(back)
            continue
        asked = _asked(w)
        if asked is None:
            problems.append(
                f"line item {w.item.id} sells an IP range but names no IP space and prefix "
                "size: none was allocated"
            )
            continue
        given = await planner.new_block(w.item, asked)
        if isinstance(given, str):
            return RangePlan(why=WHY_PREFIX + given)
        allocate.append(given)
    return RangePlan(tuple(reactivate), tuple(allocate), None, tuple(problems))


class _Planner:
    """The blocks in use, read once, with the blocks this plan gives added as it goes."""

    def __init__(
        self,
        uow: UnitOfWork,
        sub: Subscription,
        now: datetime,
        spaces: dict[int, AvailableIpSpace],
        needed: frozenset[int],
        held_until_now: bool,
    ) -> None:
        self.uow, self.sub, self.now, self.spaces = uow, sub, now, spaces
        self.needed, self.held_until_now = needed, held_until_now
        self.given: list[Block] = []
        self._held: list[HeldRange] | None = None
        self._pools: list[Block] | None = None

    async def _taken(self, item: LineItem) -> list[Block]:
        """The blocks in use but `item`'s own, the VM address pools (`pool_blocks`: a range
        overlapping one is never given nor turned back on) and what this plan gave."""
        if self._pools is None:
            self._pools = await pool_blocks(self.uow)
        live = await taken_blocks(self.uow, self.needed, but_item=item.id)
        return [*live, *self._pools, *self.given]

    async def back_on(self, w: _Item) -> list[int]:
        """The ranges of the current lapse whose addresses nobody else holds now."""
        if not w.lapsed:
            return []
        taken = await self._taken(w.item)
        back = []
        for r in w.lapsed:
            net = parse_block(r.cidr)
            if net is None or any(overlaps(net, other) for other in taken):
                continue
            back.append(r.id)
            taken.append(net)
            self.given.append(net)
        return back

    async def new_block(self, item: LineItem, asked: RangeAsked) -> IpRangeSubscription | str:
        """A new range of a free block of `asked`, or why there is none."""
        space = self.spaces.get(asked.space_id)
        if space is None:
            return f"IP space {asked.space_id} no longer exists"
        why = unsellable(space, asked.prefix)
        if why is not None:
            return why
        net = parse_block(space.cidr)
        assert net is not None  # `unsellable` parsed it
        taken = [b for b in await self._taken(item) if overlaps(b, net)]
        free = free_blocks(net, taken)
        block = best_block(free, asked.prefix)
        if block is None:
            return f"no free /{asked.prefix} block is left in IP space {space.cidr}"
        if not await self._leaves_held_room(space, net, [*taken, block]):
            return (
                f"the free /{asked.prefix} blocks of IP space {space.cidr} are held by orders "
                "awaiting payment"
            )
        self.given.append(block)
        return IpRangeSubscription(
            id=0,
            subscription_line_item_id=item.id,
            available_ip_space_id=space.id,
            created=self.now,
            cidr=str(block),
            is_active=True,
            started_at=self.now,
        )

    async def _leaves_held_room(
        self, space: AvailableIpSpace, net: Block, taken: list[Block]
    ) -> bool:
        """Whether the orders holding room in `space` still fit once `taken` is given; always
        so for an order that holds its own room (its room was counted when it was made)."""
        if await holds_room(self.uow, self.sub, self.now, held_until_now=self.held_until_now):
            return True
        if self._held is None:
            self._held = await held_by_orders(self.uow, self.now, but=self.sub.id)
        held = [h.prefix for h in self._held if h.space_id == space.id]
        return not held or fits(free_blocks(net, taken), held)


async def apply_plan(uow: UnitOfWork, plan: RangePlan, now: datetime) -> list[IpRangeSubscription]:
    """Write the plan in the booking's transaction; the new ranges as stored."""
    for range_id in plan.reactivate:
        await uow.ip_range_subscriptions.set_active(range_id, True, now)
    return [await uow.ip_range_subscriptions.add(row) for row in plan.allocate]


async def refuse_without_room(
    uow: UnitOfWork, sub: Subscription, items: Sequence[LineItem], now: datetime
) -> None:
    """A quote's check: `NoIpRangeLeft` (422) when its payment could not be given its IP
    ranges now (no free block, or the space is no longer sold: a new sale, or a holder whose
    block went to someone else). A holder whose block is still its own is never refused, even
    from a space no longer offered. Judged without locks: a race is settled by the booking."""
    plan = await plan_ranges(uow, sub, items, now, None)
    if plan.why is not None:
        reason = plan.why.removeprefix(WHY_PREFIX)
        raise NoIpRangeLeft(f"This IP range cannot be sold now: {reason}")


async def give_back_lapsed(
    uow: UnitOfWork, sub: Subscription, now: datetime, locked: frozenset[int]
) -> list[IpRangeSubscription]:
    """An admin gave `sub` paid time again (its expiry moved into the future while it still
    runs): its IP ranges the current lapse ended come back on, as a late Renewal's booking
    brings them back (`plan_ranges`, in the caller's transaction, holding `sub`'s lock and
    the spaces `locked`; `SpacesToLock` when it needs others). A range whose addresses
    someone else holds now is replaced by a new free block of the size sold, as a renewal
    does; when there is none, `NoIpRangeLeft` (422): the caller's transaction is not
    committed, nothing is changed (a renewal's payment would be booked as credit instead).
    An item that never had a range (a never-paid order) is left alone: only a payment gives
    a first block. The ranges given (new rows) are returned."""
    items = await uow.line_items.list_by_subscription(sub.id)
    plan = await plan_ranges(uow, sub, items, now, locked, lapsed_only=True)
    if plan.why is not None:
        reason = plan.why.removeprefix(WHY_PREFIX)
        raise NoIpRangeLeft(
            f"The subscription's IP range cannot be given back: {reason}. Its expiry was not "
            "changed"
        )
    return await apply_plan(uow, plan, now)
