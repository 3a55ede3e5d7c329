"""Admin VM delete (through the worker's DeleteVm, which also ends pending invoices, D24) and
the refund figure of a VM's unused paid time (api.md §9.3, pricing.md R10)."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal

import attrs

from app.admin.unused_worth import unused_worth
from app.admin.vms import require_live
from app.billing.catalogue import subscription_of
from app.billing.errors import VmNotFound
from domain.enums import PaymentMethod
from domain.errors import InvalidInput
from domain.exchange import RateTable, charge_amount
from domain.model import Subscription, Vm
from domain.money import Money
from domain.upgrade import refund_seconds
from ports.clock import Clock
from ports.jobs import DeleteVm
from ports.queue import WorkQueue
from ports.rates import RateStore
from ports.storage import UnitOfWork, UnitOfWorkFactory


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
    delete, history with the admin, pending invoices expired and cancelled, the subscription
    ended with its IP ranges, notices) is the one the lifecycle uses too, so a deleted VM's
    invoices and subscription end the same way either way."""
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
    """The unused paid time's value, in the method's charged currency (AdminRefundAmountInfo);
    `value` is the same before conversion, in the subscription's currency (before tax, as
    `amount`)."""

    amount: Money
    value: Money
    rate: Decimal
    expires: datetime | None
    seconds_remaining: int
    #: the key of a refund of this time (`refund_record.refund_reference`), not on the wire
    reference: str
    #: `value` shared out among the payments that bought the time (payment id in hex, part
    #: in smallest units): what each one's invoice gives back (`Unused.split`), not on the
    #: wire
    shares: tuple[tuple[str, int], ...] = ()


def refund_start(from_date: datetime | None, now: datetime, field: str) -> datetime:
    """Where a refund's unused time starts: `from_date`, default now, never before now
    (`InvalidInput`, 400): time already used is not refunded, and counting "unused" time
    from a past date would pay back more than the periods it covers were paid."""
    if from_date is None:
        return now
    if from_date < now:
        raise InvalidInput(
            f"{field} must not be earlier than now ({now.isoformat()}): time already used "
            "is not refunded"
        )
    return from_date


async def refund_value(
    uow: UnitOfWork,
    sub: Subscription,
    vm: Vm,
    start: datetime,
    *,
    method: PaymentMethod,
    rates: RateTable,
    now: datetime,
) -> RefundAmount:
    """The subscription's unused time from `start` to its expiry, valued as a refund to
    credit values it (`unused_worth`: the whole price in force, every line item's share, in
    the subscription's currency, never more than was paid for the time), converted for
    `method` like a charge (R10.4: no tax). Refused for a deleted VM, a subscription without
    an expiry or none left after `start` (`refund_seconds`)."""
    seconds = refund_seconds(sub.expires, start, deleted=vm.deleted)
    unused = await unused_worth(uow, sub, vm.id, start)
    worth = unused.valued(rates, now)
    charged = charge_amount(worth.money, method, rates, now)
    return RefundAmount(
        amount=charged.money,
        value=worth.money,
        rate=charged.rate,
        expires=sub.expires,
        seconds_remaining=seconds,
        reference=unused.reference,
        shares=tuple(unused.split(worth.money.amount, rates, now).items()),
    )


async def refund_amount(
    uow_factory: UnitOfWorkFactory,
    rates: RateStore,
    clock: Clock,
    *,
    vm_id: int,
    method: PaymentMethod,
    from_date: datetime | None,
) -> RefundAmount:
    """`refund_value` of the remaining time from `from_date` (default now, never earlier:
    `refund_start`): what a refund by hand from then pays, before its credit notes add the
    VAT the invoices charged.

    The value is exact (`unused_worth`): the whole price in force times the unused share of
    the periods the payments bought (each from its real start), never more than those
    payments and the upgrades since carried for it, floored to the list unit, then to
    msat/sat as a Lightning charge would be.
    """
    now = clock.now()
    when = refund_start(from_date, now, "from_date")
    table = await rates.table()
    async with uow_factory() as uow:
        vm = await uow.vms.get(vm_id)
        if vm is None:
            raise VmNotFound("VM not found")
        sub = await subscription_of(uow, vm)
        return await refund_value(uow, sub, vm, when, method=method, rates=table, now=now)
