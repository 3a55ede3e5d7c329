"""A deletion ends its subscription once no VM of it is left (grace expiry, admin delete)."""

from __future__ import annotations

from datetime import datetime

from domain.enums import SubscriptionType
from domain.lifecycle import deactivated
from domain.model import Subscription
from domain.switch_off import ended
from ports.storage import UnitOfWork


async def end_subscription(uow: UnitOfWork, sub: Subscription, now: datetime) -> Subscription:
    """`sub` switched off (CANCELLED through the state law) and its open IP ranges ended, in
    the caller's deleting transaction; the subscription as it is now.

    The IP ranges end with it because nothing else would end them: the lifecycle handles
    active subscriptions only. A payment that still arrives sets the subscription up again,
    its IP ranges with it where their blocks are still free (`ip_allocation`, D24). One an
    admin switched off is recorded as ended (`domain.switch_off.ended`): the lifecycle has
    nothing left to do for it, and a payment that still arrives becomes account credit.
    """
    after = ended(deactivated(sub, now) if sub.is_active else sub)
    if after != sub:
        await uow.subscriptions.update(after)
    await uow.ip_range_subscriptions.deactivate_for_subscription(sub.id, now)
    return after


async def end_if_no_vm_left(uow: UnitOfWork, subscription_id: int, now: datetime) -> bool:
    """After a VM's deletion is recorded in this transaction: end the subscription
    (`end_subscription`) when none of its VPS items has a VM that is not deleted; True then.

    A subscription whose VM is deleted cannot be renewed (`refuse_deleted_vm`), so leaving it
    active would only bring the lifecycle's expiring-soon and expiry steps and, after the
    grace, a "Cancelled: not renewed within the grace period" notice for a VM the user never
    failed to renew. Its other line items (an IP range sold with the VM) end with it at once,
    their paid time included: they can no more be renewed than the VM. A subscription that
    still holds a live VM (orders make one VM per subscription; only a hand-built row holds
    two) stays active: that VM keeps its paid time and the lifecycle ends it in its turn.
    """
    sub = await uow.subscriptions.get(subscription_id)
    if sub is None:
        return False
    for item in await uow.line_items.list_by_subscription(sub.id):
        if item.subscription_type is not SubscriptionType.VPS:
            continue
        if await uow.vms.get_by_line_item(item.id) is not None:
            return False
    await end_subscription(uow, sub, now)
    return True
