"""Admin VM delete (through the worker's DeleteVm, which also ends pending invoices, D24) and
the refund figure of a VM's unused paid time (api.md §9.3, pricing.md R10)."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal

import attrs

from app.admin.vms import require_live
from app.billing.catalogue import subscription_of, vm_price
from app.billing.errors import VmNotFound
from domain.enums import PaymentMethod
from domain.exchange import charge_amount
from domain.money import Money
from domain.upgrade import remaining_time_info
from ports.clock import Clock
from ports.jobs import DeleteVm, SendAdminNotification
from ports.queue import WorkQueue
from ports.rates import RateStore
from ports.storage import UnitOfWorkFactory


async def delete_vm(
    uow_factory: UnitOfWorkFactory,
    queue: WorkQueue,
    clock: Clock,
    *,
    vm_id: int,
    admin_id: int,
    reason: str | None,
) -> str:
    """Queue DeleteVm for the worker; its job id. The worker's path (delete on the host, soft
    delete, history with the admin, pending invoices expired and cancelled, notices) is the
    one the lifecycle uses too, so a deleted VM's invoices end the same way either way."""
    async with uow_factory() as uow:
        require_live(await uow.vms.get(vm_id), "VM is already deleted")
    job = DeleteVm(
        vm_id=vm_id,
        admin_user_id=admin_id,
        reason=reason or None,
        request=secrets.token_hex(8),  # one per request: a redelivery is known by it
        requested=int(clock.now().timestamp()),
    )
    return await queue.send(job)


@attrs.frozen(kw_only=True)
class RefundAmount:
    """The unused paid time's value, in the method's charged currency (AdminRefundAmountInfo)."""

    amount: Money
    rate: Decimal
    expires: datetime | None
    seconds_remaining: int


async def refund_amount(
    uow_factory: UnitOfWorkFactory,
    rates: RateStore,
    clock: Clock,
    *,
    vm_id: int,
    method: PaymentMethod,
    from_date: datetime | None,
) -> RefundAmount:
    """`prorated_cost` of the remaining time from `from_date` (default now) at the VM's
    current list price, converted for `method` like a charge (R10.4: no tax).

    The value is exact (`unused_value`): the price per whole calendar interval left, the rest
    its share of the interval holding `from_date`, floored to the list unit, then to msat/sat
    as a Lightning charge would be.
    """
    now = clock.now()
    when = now if from_date is None else from_date
    async with uow_factory() as uow:
        vm = await uow.vms.get(vm_id)
        if vm is None:
            raise VmNotFound("VM not found")
        sub = await subscription_of(uow, vm)
        price = await vm_price(uow, vm)
    remaining = remaining_time_info(
        price.list_price, price.interval, sub.expires, when, deleted=vm.deleted
    )
    charged = charge_amount(remaining.prorated_cost, method, await rates.table(), now)
    return RefundAmount(
        amount=charged.money,
        rate=charged.rate,
        expires=sub.expires,
        seconds_remaining=remaining.seconds_remaining,
    )


async def request_refund(
    queue: WorkQueue,
    *,
    vm_id: int,
    refund: RefundAmount,
    method: PaymentMethod,
    lightning_invoice: str | None,
    admin_id: int,
    reason: str | None,
) -> str:
    """Queue a notice to the admins naming the refund to pay; its job id.

    No money moves here: the reference's ProcessVmRefund job was never implemented (it
    always failed), and paying out automatically from an admin click is the kind of thing
    that must be done by a person. The audit trail records who asked for it.
    """
    figure = f"{refund.amount.amount} {refund.amount.currency.value} (smallest units)"
    lines = [
        f"Refund requested for VM #{vm_id} by admin user #{admin_id}: {figure} "
        f"by {method.display_name}, for {refund.seconds_remaining} s of unused time.",
        "It is not paid automatically: pay it by hand.",
    ]
    if lightning_invoice:
        lines.append(f"Invoice to pay: {lightning_invoice}")
    if reason:
        lines.append(f"Reason: {reason}")
    message = "\n".join(lines)
    return await queue.send(
        SendAdminNotification(title=f"[VM{vm_id}] Refund requested", message=message)
    )
