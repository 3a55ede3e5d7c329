"""A payment of any of the caller's subscriptions (a VM's or an IP range's), ownership checked."""

from __future__ import annotations

from app.billing.errors import PaymentNotFound
from domain.model import Subscription, SubscriptionPayment, Vm
from ports.storage import UnitOfWork


async def owned_payment(
    uow: UnitOfWork, user_id: int, payment_id: bytes
) -> tuple[SubscriptionPayment, Vm | None]:
    """The caller's payment and its subscription's VM (None: it has none, as an IP range's
    subscription). The caller must have paid it and own the VM when there is one. Unknown
    or another's: `PaymentNotFound`, so it never tells that another user's payment exists
    (D19)."""
    payment = await uow.payments.get(payment_id)
    if payment is None or payment.user_id != user_id:
        raise PaymentNotFound("Payment not found")
    vm = await uow.vms.get_by_subscription(payment.subscription_id)
    if vm is not None and vm.user_id != user_id:
        raise PaymentNotFound("Payment not found")
    return payment, vm


async def owned_subscription_payment(
    uow: UnitOfWork, user_id: int, payment_id: bytes
) -> tuple[SubscriptionPayment, Subscription | None]:
    """The caller's payment and its subscription (None when the row is gone).

    The caller must have paid it and own its subscription, and its VM when it has one: a
    subscription without a VM (an IP range) has payments too (the reference refused those as
    "VM not found"). Unknown or another's: `PaymentNotFound` (`owned_payment`)."""
    payment, _ = await owned_payment(uow, user_id, payment_id)
    sub = await uow.subscriptions.get(payment.subscription_id)
    if sub is not None and sub.user_id != user_id:
        raise PaymentNotFound("Payment not found")
    return payment, sub
