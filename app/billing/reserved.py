"""Which live VMs hold room on their hosts: all but never-paid orders past their window (D25)."""

from __future__ import annotations

from datetime import datetime

from domain.lifecycle import UNPAID_CLEANUP_AFTER, never_paid_cleanup_due
from domain.model import Vm
from ports.storage import UnitOfWork


async def lapsed_unpaid_vm_ids(uow: UnitOfWork, now: datetime) -> set[int]:
    """Never-paid VMs the cleanup would delete now (D17), though the worker has not yet.

    The same test as the cleanup: ordered more than an hour ago, never set up, no expiry,
    no pending payment. Only such stale orders are read, so this costs nothing while the
    worker keeps up.
    """
    lapsed: set[int] = set()
    for vm in await uow.vms.list_never_paid(ordered_before=now - UNPAID_CLEANUP_AFTER):
        sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
        if sub is None:
            continue
        pending = await uow.payments.list_pending_for_subscription(sub.id, now)
        if never_paid_cleanup_due(sub, bool(pending), now):
            lapsed.add(vm.id)
    return lapsed


async def reserving_vms(uow: UnitOfWork, now: datetime) -> list[Vm]:
    """The live VMs whose CPU, memory and disk count as used on their host (D25).

    Paid VMs reserve their room, expired ones too while in grace (a renewal restarts them).
    A never-paid order reserves its room during its payment window — one hour after the
    order, longer while an invoice for it is pending — so an order that is paid always fits;
    past that window it no longer counts, even before the worker deletes it. One user holds
    at most `max-unpaid-vms` such orders at once, so nobody can fill a host with orders they
    never pay for.
    """
    lapsed = await lapsed_unpaid_vm_ids(uow, now)
    return [vm for vm in await uow.vms.list_active() if vm.id not in lapsed]
