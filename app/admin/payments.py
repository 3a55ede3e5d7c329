"""Admin manual completion of a payment: exactly once through `complete_payment` (D9)."""

from __future__ import annotations

import logging

from app.billing.completion import complete_payment
from app.billing.errors import PaymentNotFound, VmNotFound
from app.billing.rails import PaymentRails
from app.settlement_retries import passing
from domain.admin_completion import AdminCompletion, NodeSettlement
from domain.enums import PaymentMethod
from domain.errors import InvalidInput, PaymentAlreadyCompleted, found
from domain.model import SubscriptionPayment
from ports.clock import Clock
from ports.queue import WorkQueue
from ports.storage import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

ALREADY_COMPLETED = "Payment is already completed"


class PaymentNotOfVm(InvalidInput):
    """A payment id of another VM's subscription (400, api.md §9.3 text)."""


async def vm_payment(uow: UnitOfWork, vm_id: int, payment_id: bytes) -> SubscriptionPayment:
    """The payment, checked to belong to the VM's subscription."""
    vm = found(await uow.vms.get(vm_id), VmNotFound("VM not found"))
    payment = await subscription_payment(uow, payment_id)
    sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
    if sub is None or payment.subscription_id != sub.id:
        raise PaymentNotOfVm("Payment does not belong to this VM")
    return payment


async def subscription_payment(uow: UnitOfWork, payment_id: bytes) -> SubscriptionPayment:
    return found(await uow.payments.get(payment_id), PaymentNotFound("Payment not found"))


async def complete_as_admin(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
    *,
    payment_id: bytes,
    admin_id: int,
    vm_id: int | None = None,
) -> SubscriptionPayment:
    """Complete an unpaid payment (of `vm_id` when given) and return it re-read.

    Paid already, or paid by a concurrent click or webhook while this one ran: 409
    "Payment is already completed"; `complete_payment` flips `is_paid` at most once, so
    the subscription is extended once whatever the race.

    A Lightning payment is completed with what the node received (`_received_msat`), as
    the settlement intake does: what a payer sent beyond the invoice becomes account credit
    in the same booking, so once, whoever completes it first. Less than its total (a
    settlement the intake refused as short) is the one case the intake never completes:
    the admin's completion counts it as paid, the rest waived, and records what arrived
    (`AdminCompletion.short_received_msat`), so its invoice states the money received, not
    the total asked (`domain.shortfall`).

    The booking records `admin_id` on the payment and its VM history (`AdminCompletion`),
    with what the node said of a Lightning invoice and when it was booked: a settlement
    that arrives surely after the booking for an invoice the node had not settled is money
    this completion did not count; one that may have come between the node's answer and
    the booking is only reported (`app.billing.paid_after_admin`).
    """
    async with uow_factory() as uow:
        if vm_id is None:
            payment = await subscription_payment(uow, payment_id)
        else:
            payment = await vm_payment(uow, vm_id, payment_id)
    if payment.is_paid:
        raise PaymentAlreadyCompleted(ALREADY_COMPLETED)
    received, seen = await _received_msat(uow_factory, rails, payment)
    short = received is not None and received < payment.total
    report = await complete_payment(
        uow_factory,
        clock,
        rails,
        queue,
        payment_id=payment.id,
        received_msat=None if short else received,
        by_admin=AdminCompletion(
            admin_id=admin_id, settlement=seen, short_received_msat=received if short else None
        ),
    )
    if not report.completed:
        raise PaymentAlreadyCompleted(ALREADY_COMPLETED)
    async with uow_factory() as uow:
        return await subscription_payment(uow, payment.id)


async def _received_msat(
    uow_factory: UnitOfWorkFactory, rails: PaymentRails, payment: SubscriptionPayment
) -> tuple[int | None, NodeSettlement | None]:
    """What the Lightning node received for `payment`: the amount its settlement problem
    recorded (kept when the intake could not complete it), else the node's settlement of its
    invoice (none, or the node unreachable: nothing known, logged). None for another method.
    Less than the payment's total is logged: an admin completing a short settlement decided
    to count it as paid. With it, what the node said (`NodeSettlement`; None for another
    method)."""
    if payment.payment_method is not PaymentMethod.LIGHTNING:
        return None, None
    async with uow_factory() as uow:
        problem = await uow.settlement_problems.get_by_payment(payment.id)
    if problem is not None:
        received = problem.amount_paid_msat
    else:
        try:
            settled = await rails.lightning_settlement(payment.id)
        except Exception as err:
            if not passing(err):
                raise
            # an admin must be able to complete a payment while the node is down (the
            # reason to complete by hand); only an overpayment's excess goes unseen
            log.warning(
                "OPERATOR: payment %s completed by an admin without the node's settlement "
                "(%s): anything paid beyond its invoice is not credited; check the node",
                payment.id.hex(),
                err,
            )
            return None, NodeSettlement.UNKNOWN
        if settled is None:
            # no node here to ask (an admin API run apart from it): nothing is known
            seen = NodeSettlement.NONE if rails.asks_lightning_node else NodeSettlement.UNKNOWN
            return None, seen
        received = settled.amount_paid_msat
    if received < payment.total:
        log.warning(
            "payment %s completed by an admin though the node received %d msat of its %d",
            payment.id.hex(),
            received,
            payment.total,
        )
    return received, NodeSettlement.COUNTED


async def complete_bank_transfer(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
    *,
    reference: str,
    admin_id: int,
) -> SubscriptionPayment:
    """An operator saw the transfer of `reference` arrive: complete its payment exactly once
    (409 when already completed; 404 for a reference no bank-transfer payment carries)."""
    async with uow_factory() as uow:
        payment = await uow.payments.get_by_external_id(reference) if reference else None
    if payment is None or payment.payment_method is not PaymentMethod.BANK_TRANSFER:
        raise PaymentNotFound("No bank transfer with this reference")
    return await complete_as_admin(
        uow_factory, clock, rails, queue, payment_id=payment.id, admin_id=admin_id
    )
