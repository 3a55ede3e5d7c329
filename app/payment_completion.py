"""Complete a payment exactly once: the single place where paying changes state (D9, D13)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import attrs

from domain.enums import SubscriptionPaymentType
from domain.model import LineItem, Subscription, SubscriptionPayment
from domain.subscription import apply_paid_payment
from ports.clock import Clock
from ports.storage import UnitOfWork, UnitOfWorkFactory


@attrs.frozen(kw_only=True)
class CompletedPayment:
    """What a completion changed; product handlers (spawn VM, IP range …) start from here.

    `cancelled_upgrades` are competing pending Upgrade payments that were expired in the same
    transaction; the caller cancels each one at its own provider (D13).
    """

    payment: SubscriptionPayment
    subscription_before: Subscription
    subscription: Subscription
    line_items: list[LineItem]
    revived_vms: int
    cancelled_upgrades: list[SubscriptionPayment]

    @property
    def is_upgrade(self) -> bool:
        return self.payment.payment_type == SubscriptionPaymentType.UPGRADE

    @property
    def is_first_payment(self) -> bool:
        """The subscription was never set up before: a product must now be provisioned."""
        return not self.subscription_before.is_setup and self.subscription.is_setup


#: Writes a completion's own records (the VM history) inside the booking transaction.
Recorder = Callable[[UnitOfWork, CompletedPayment], Awaitable[None]]


async def apply_payment(
    uow_factory: UnitOfWorkFactory,
    payment_id: bytes,
    clock: Clock,
    record: Recorder | None = None,
) -> CompletedPayment | None:
    """Mark the payment paid and apply it to its subscription, in one transaction (D9).

    The flip `is_paid 0 → 1` is the gate: when it changes no row (unknown id, already paid,
    or another worker won the race) nothing else happens and the result is None, so replayed
    settlements, duplicate webhooks and admin double clicks extend a subscription once.

    Soft-deleted VMs of the subscription are brought back (lifecycle.md D20 step 2), except
    for an Upgrade payment: it never re-activates a lapsed subscription (D12), so it does not
    resurrect its VM either.

    `record` runs in the same transaction, just before the commit: what it writes exists
    exactly when the payment is booked. A process killed between two transactions would
    otherwise leave a booked payment without its records for good, since a replay finds it
    paid and does nothing (the kill -9 test in tests/e2e pins this).
    """
    now = clock.now()
    async with uow_factory() as uow:
        payment = await uow.payments.get(payment_id)
        if payment is None or payment.is_paid:
            return None
        # the subscription lock first, then the payment rows: every completion and every
        # lifecycle action takes locks in that order, so two payments of one subscription
        # completing together queue up instead of deadlocking
        before = await uow.subscriptions.get_for_update(payment.subscription_id)
        if before is None:  # impossible with the foreign key
            raise LookupError(f"payment {payment_id.hex()} has no subscription")
        if not await uow.payments.mark_paid(payment_id, now):
            return None
        after = apply_paid_payment(before, payment, now)
        if after != before:
            await uow.subscriptions.update(after)
        upgrade = payment.payment_type == SubscriptionPaymentType.UPGRADE
        revived = 0 if upgrade else await uow.vms.undelete_for_subscription(before.id)
        cancelled = await uow.payments.expire_pending_upgrades(before.id, payment_id, now)
        items = await uow.line_items.list_by_subscription(before.id)
        paid: SubscriptionPayment = attrs.evolve(cast(Any, payment), is_paid=True, paid_at=now)
        done = CompletedPayment(
            payment=paid,
            subscription_before=before,
            subscription=after,
            line_items=items,
            revived_vms=revived,
            cancelled_upgrades=cancelled,
        )
        if record is not None:
            await record(uow, done)
        await uow.commit()
    return done
