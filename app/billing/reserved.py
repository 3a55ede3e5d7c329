"""Which live VMs hold room on their hosts: all but never-paid orders past their window (D25)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import attrs

from app.billing.rails import LIGHTNING_EXPIRY
from domain.intervals import require_utc
from domain.lifecycle import UNPAID_CLEANUP_AFTER, never_paid_cleanup_due
from domain.model import Subscription, Vm
from domain.pricing import Spec
from ports.storage import UnitOfWork

#: The longest a never-paid order holds its room (D17, D25): its payment window, then at
#: most a Lightning invoice's lifetime, whichever rail its invoice is on. An invoice asked for
#: in the window's last minute on the short rail is still payable with its room; a slower
#: rail's invoice (a card order's hour, a bank transfer's days) outlives the hold, so one
#: free order cannot keep a host's room for days by asking for a bank-transfer quote.
UNPAID_HOLD_LIMIT = UNPAID_CLEANUP_AFTER + LIGHTNING_EXPIRY


def unpaid_hold_over(sub: Subscription, now: datetime) -> bool:
    """Whether a never-paid order is past `UNPAID_HOLD_LIMIT`: no pending payment holds its
    room any more.

    Such an order is not deleted while its invoice is pending (D17): a payment that still
    comes books as any payment of an order past its window (`order_lapsed`, completion's
    `_placing`): its VM is placed again if its host or region has room, else the payment
    becomes account credit, as for a VM that cannot be restored (`unrestorable`). Refusing
    slow rails for a first purchase instead would break the LNVPS clients, which offer
    every configured method (bank transfer too) for any VM."""
    hold = require_utc(now) - require_utc(sub.created)
    return never_paid_cleanup_due(sub, False, now) and hold > UNPAID_HOLD_LIMIT


async def lapsed_unpaid_vms(uow: UnitOfWork, now: datetime) -> list[Vm]:
    """Never-paid VMs that hold no room now: those the cleanup would delete (D17), though the
    worker has not yet, and those past `UNPAID_HOLD_LIMIT` that it keeps for a pending slow
    payment (`unpaid_hold_over`).

    The cleanup's test: ordered more than an hour ago, never set up, no expiry, no pending
    payment. Only such stale orders are read, so this costs nothing while the worker keeps
    up, and three statements whatever their number when it does not (every order reads
    this: one statement per stale order would let a backlog of unpaid orders slow every
    order down).
    """
    stale = await uow.vms.list_never_paid(ordered_before=now - UNPAID_CLEANUP_AFTER)
    if not stale:
        return []
    subs, lapsed = await lapsed_orders(uow, stale, now)
    return [
        vm
        for vm in stale
        if (sub := subs.get(vm.subscription_line_item_id)) is not None and sub.id in lapsed
    ]


async def lapsed_orders(
    uow: UnitOfWork, vms: list[Vm], now: datetime
) -> tuple[dict[int, Subscription], set[int]]:
    """The subscriptions of never-paid `vms` by line item, and the ids of those whose order
    holds no room now: past its window with no payment pending, or past `UNPAID_HOLD_LIMIT`
    (`unpaid_hold_over`). Two statements whatever the number of VMs."""
    subs = await uow.subscriptions.get_by_line_items({vm.subscription_line_item_id for vm in vms})
    due = {sub.id for sub in subs.values() if never_paid_cleanup_due(sub, False, now)}
    over = {sub.id for sub in subs.values() if sub.id in due and unpaid_hold_over(sub, now)}
    pending = await uow.payments.with_pending(due, now) - over if due else set()
    return subs, due - pending


async def order_lapsed(
    uow: UnitOfWork, sub: Subscription, now: datetime, *, held_until_now: bool = False
) -> bool:
    """Whether a never-paid order has let its room go (D25): past its payment window with no
    payment pending, or past `UNPAID_HOLD_LIMIT` at all, as `lapsed_unpaid_vms` counts it
    (every such payment was issued within the window: `refuse_lapsed_order`).
    `held_until_now`: a payment that was pending until this moment (being booked now) held
    it, unless the hold is over. The pending read runs only for an order past its window
    and within the hold."""
    if not never_paid_cleanup_due(sub, False, now):
        return False
    if unpaid_hold_over(sub, now):
        return True
    if held_until_now:
        return False
    return not await uow.payments.list_pending_for_subscription(sub.id, now)


@attrs.define
class Usage:
    """What the reserving VMs of one host take: CPU, memory and bytes per disk id."""

    cpu: int = 0
    memory: int = 0
    disk: defaultdict[int, int] = attrs.field(factory=lambda: defaultdict(int))


async def specs_of(uow: UnitOfWork, vms: list[Vm]) -> dict[int, Spec]:
    """Each VM's spec by VM id (a VM whose template row is gone is left out), in two reads
    whatever the number of VMs: the templates (a small catalogue) and the custom templates
    of these VMs (one each, so read together, not one statement per custom VM)."""
    templates: dict[int, Spec] = {}
    if any(vm.template_id is not None for vm in vms):
        templates = {row.id: row for row in await uow.templates.list_all()}
    wanted = {vm.custom_template_id for vm in vms if vm.custom_template_id is not None}
    customs = await uow.custom_templates.get_many(wanted) if wanted else {}
    specs: dict[int, Spec] = {}
    for vm in vms:
        spec: Spec | None = None
        if vm.template_id is not None:
            spec = templates.get(vm.template_id)
        elif vm.custom_template_id is not None:
            spec = customs.get(vm.custom_template_id)
        if spec is not None:
            specs[vm.id] = spec
    return specs


async def reserved_usage(
    uow: UnitOfWork, host_ids: set[int], now: datetime
) -> defaultdict[int, Usage]:
    """CPU, memory and per-disk bytes already promised to the hosts' VMs, by host id (a host
    with none: an empty `Usage`).

    Which VMs hold room (D25): paid VMs, expired ones too while in grace (a renewal restarts
    them), and a never-paid order during its payment window (one hour after the order,
    longer while an invoice asked for within that hour is pending, but never past
    `UNPAID_HOLD_LIMIT`, whatever the invoice's rail: none is issued after the hour,
    `refuse_lapsed_order`), so an order paid in time always fits; past that it no longer
    counts, even before the worker deletes it. One user holds at
    most `max-unpaid-vms` such orders at once, so nobody can fill a host with orders they
    never pay for. Summed by the database over every live VM of the hosts, then the lapsed
    orders' specs taken off (few: the worker deletes them): the rows read do not grow with
    the VMs."""
    if not host_ids:
        return defaultdict(Usage)
    return await _usage(uow, host_ids, await _lapsed_specs(uow, host_ids, now), never_paid=False)


async def reserved_and_unpaid_usage(
    uow: UnitOfWork, host_ids: set[int], now: datetime
) -> tuple[defaultdict[int, Usage], defaultdict[int, Usage]]:
    """`reserved_usage`, and the part of it never-paid orders hold (the host share of D25's
    `UnpaidRoom`: never-paid orders that have not lapsed), by host id; the lapsed orders
    are read once for both."""
    if not host_ids:
        return defaultdict(Usage), defaultdict(Usage)
    lapsed = await _lapsed_specs(uow, host_ids, now)
    every = await _usage(uow, host_ids, lapsed, never_paid=False)
    return every, await _usage(uow, host_ids, lapsed, never_paid=True)


async def _lapsed_specs(
    uow: UnitOfWork, host_ids: set[int], now: datetime
) -> list[tuple[Vm, Spec]]:
    """The lapsed orders on these hosts (`lapsed_unpaid_vms`) with their specs."""
    lapsed = [vm for vm in await lapsed_unpaid_vms(uow, now) if vm.host_id in host_ids]
    specs = await specs_of(uow, lapsed)
    return [(vm, specs[vm.id]) for vm in lapsed if vm.id in specs]


async def _usage(
    uow: UnitOfWork, host_ids: set[int], lapsed: list[tuple[Vm, Spec]], *, never_paid: bool
) -> defaultdict[int, Usage]:
    """The database's sums (of the never-paid orders only, with `never_paid`), the lapsed
    orders' specs taken off: lapsed orders are never-paid ones, so they are in both sums."""
    usage: defaultdict[int, Usage] = defaultdict(Usage)
    for total in await uow.vms.spec_totals(host_ids, never_paid=never_paid):
        used = usage[total.host_id]
        used.cpu += total.cpu
        used.memory += total.memory
        used.disk[total.disk_id] += total.disk
    for vm, spec in lapsed:
        used = usage[vm.host_id]
        used.cpu -= spec.cpu
        used.memory -= spec.memory
        used.disk[vm.disk_id] -= spec.disk_size
    return usage
