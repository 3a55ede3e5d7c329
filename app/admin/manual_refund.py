"""Admin refund of a VM's unused paid time by hand: recorded once, the time cut, admins told."""

from __future__ import annotations

from datetime import datetime

import attrs

from app.admin.refund_record import MANUAL, NothingToRefund, refund_event, refuse_if_refunded
from app.admin.vm_removal import RefundAmount, refund_start, refund_value
from app.admin.vms import require_live
from app.billing.catalogue import subscription_of, vm_price
from app.billing.errors import SubscriptionNotFound
from domain.enums import PaymentMethod
from ports.clock import Clock
from ports.jobs import SendAdminNotification
from ports.queue import WorkQueue
from ports.rates import RateStore
from ports.storage import UnitOfWorkFactory

#: the refusal for a deleted VM, the refund figure's (R10.1)
_DELETED = "Can't calculate for deleted VM"


def _figure(refund: RefundAmount) -> str:
    return f"{refund.amount.amount} {refund.amount.currency.value} (smallest units)"


def _notice(
    vm_id: int,
    refund: RefundAmount,
    method: PaymentMethod,
    lightning_invoice: str | None,
    admin_id: int,
    reason: str | None,
) -> SendAdminNotification:
    lines = [
        f"Refund requested for VM #{vm_id} by admin user #{admin_id}: {_figure(refund)} "
        f"by {method.display_name}, for {refund.seconds_remaining} s of unused time.",
        "It is not paid automatically: pay it by hand. The paid time was cut to the refund's "
        "start; the refund is recorded in the VM's history.",
    ]
    if lightning_invoice:
        lines.append(f"Invoice to pay: {lightning_invoice}")
    if reason:
        lines.append(f"Reason: {reason}")
    return SendAdminNotification(title=f"[VM{vm_id}] Refund requested", message="\n".join(lines))


async def refund_by_hand(
    uow_factory: UnitOfWorkFactory,
    rates: RateStore,
    clock: Clock,
    queue: WorkQueue,
    *,
    vm_id: int,
    method: PaymentMethod,
    from_date: datetime | None,
    lightning_invoice: str | None,
    admin_id: int,
    reason: str | None,
) -> str:
    """Record a refund of the VM's unused time from `from_date` (default now, never
    earlier: 400) to its expiry, to be paid by hand, then tell the admins; the notice's job id.

    No money moves here: the reference's ProcessVmRefund job was never implemented (it
    always failed), and paying out automatically from an admin click is the kind of thing
    that must be done by a person. What makes it once-only is the same as for a refund to
    credit, in one transaction under the subscription's lock (taken first, as completion
    does): the subscription's expiry is cut to the refund's start, and a VM history entry
    records who refunded what (its reference is the credit ledger's of a refund to credit,
    `vm:{id}:until:{expiry}`). A second refund of that time, by hand or to credit, then
    finds nothing left and the record that cut it: 409. Pending quotes fare as after a
    refund to credit: a renewal paid later extends from the cut expiry (or now), so it buys
    its own time; an upgrade was priced to the old expiry and is not applied (credited).
    """
    now = clock.now()
    start = refund_start(from_date, now, "refund_from_date")
    async with uow_factory() as uow:  # which subscription: read before its lock is taken
        found = await subscription_of(uow, require_live(await uow.vms.get(vm_id), _DELETED))
    table = await rates.table()  # outside the transaction: the rate store may be remote
    async with uow_factory() as uow:
        # the lock is this transaction's first statement: on MariaDB the first plain read
        # fixes the snapshot, so the reads below see what was committed before the lock
        sub = await uow.subscriptions.get_for_update(found.id)
        vm = require_live(await uow.vms.get(vm_id), _DELETED)
        if sub is None or (await subscription_of(uow, vm)).id != sub.id:
            raise SubscriptionNotFound("Subscription not found")
        if sub.expires is not None and sub.expires <= start:
            await refuse_if_refunded(uow, vm.id, sub.expires)  # 409 when a refund cut it
        price = await vm_price(uow, vm)
        refund = refund_value(
            price, sub.expires, start, deleted=False, method=method, rates=table, now=now
        )
        if refund.amount.amount <= 0:
            raise NothingToRefund("The unused time is worth nothing")
        assert sub.expires is not None  # refund_value refuses a subscription without one
        await uow.subscriptions.update(attrs.evolve(sub, expires=start))
        extra = {"method": method.api_name, "seconds": refund.seconds_remaining}
        await uow.vm_history.add(
            refund_event(
                vm_id=vm.id,
                kind=MANUAL,
                admin_id=admin_id,
                expires=sub.expires,
                cut_to=start,
                figure=_figure(refund),
                now=now,
                reason=reason,
                extra=extra,
            )
        )
        await uow.commit()
    return await queue.send(_notice(vm_id, refund, method, lightning_invoice, admin_id, reason))
