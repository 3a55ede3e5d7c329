"""Admin refund of a VM's unused paid time to the owner's credit balance, exactly once."""

from __future__ import annotations

from datetime import datetime

import attrs

from app.admin.vms import require_live
from app.billing.catalogue import subscription_of
from app.billing.credit_balance import Booked, book_in
from app.billing.errors import SubscriptionNotFound
from app.billing.price_in_force import price_in_force
from domain.account_credit import CreditReason, checked_entry
from domain.errors import DomainError
from domain.model import Vm
from domain.money import Money
from domain.price_basis import PriceBasis
from domain.upgrade import remaining_time_info
from ports.clock import Clock
from ports.storage import UnitOfWorkFactory


class NothingToRefund(DomainError):
    """No unused paid time is left (already refunded, expired, or worth nothing)."""


class SeveralCurrencies(DomainError):
    """The subscription's items are priced in more than one currency (422)."""


def _in_one_currency(basis: PriceBasis) -> Money:
    """The price per interval as one amount; a free one is worth nothing to refund."""
    if not basis.recurring:
        raise NothingToRefund("The unused time is worth nothing")
    if len(basis.recurring) > 1:
        raise SeveralCurrencies(
            "The subscription is priced in several currencies: refund it by adjustments"
        )
    [(currency, amount)] = basis.recurring
    return Money(currency, amount)


def _live(vm: Vm | None) -> Vm:
    return require_live(vm, "VM is already deleted")


async def refund_to_credit(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    vm_id: int,
    admin_id: int,
    reason: str | None,
) -> Booked:
    """Turn the VM's unused paid time into credit in its list currency, in one transaction.

    The value is exact (R10): the subscription's whole price per interval as it is in force
    now (`price_in_force`: the VM's list price plus every other line item, such as an IP
    range billed with it), spread over the calendar interval ending at the expiry, for the
    time from now to the expiry. That is the refund figure of GET /vms/{id}/refund before
    conversion when the VM is the subscription's only item. The whole subscription's expiry
    is cut to now in the same transaction, so no item's time is both kept and refunded: a
    second request finds nothing left (422), and the ledger entry's reference (the VM and
    the expiry it refunded) books it once even if two requests race. The subscription lock
    is taken first, as completion does, then the balance lock. A subscription priced in
    more than one currency is refused (422): one ledger entry cannot hold its value.
    """
    now = clock.now()
    async with uow_factory() as uow:  # which subscription: read before its lock is taken
        found = await subscription_of(uow, _live(await uow.vms.get(vm_id)))
    async with uow_factory() as uow:
        # the lock is this transaction's first statement: on MariaDB the first plain read
        # fixes the snapshot, so the price below is read as committed before the lock
        sub = await uow.subscriptions.get_for_update(found.id)
        vm = _live(await uow.vms.get(vm_id))
        if sub is None or (await subscription_of(uow, vm)).id != sub.id:
            raise SubscriptionNotFound("Subscription not found")
        if sub.expires is None or sub.expires <= now:
            raise NothingToRefund("No paid time is left to refund")
        basis = await price_in_force(uow, sub, purchase=False)
        remaining = remaining_time_info(_in_one_currency(basis), basis.interval, sub.expires, now)
        value = remaining.prorated_cost
        if value.amount <= 0:
            raise NothingToRefund("The unused time is worth nothing")
        expires: datetime = sub.expires
        entry = checked_entry(
            user_id=sub.user_id,
            currency=value.currency.value,
            amount=value.amount,
            reason=CreditReason.REFUND_TO_CREDIT,
            reference=f"vm:{vm_id}:until:{int(expires.timestamp())}",
            note=(reason or f"unused time of VM {vm_id}")[:255],
            created=now,
            admin_id=admin_id,
        )
        booked = await book_in(uow, entry)
        if not booked.replayed:
            await uow.subscriptions.update(attrs.evolve(sub, expires=now))
        await uow.commit()
    return booked
