"""Complete a payment exactly once: the single place where paying changes state (D9, D13)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import attrs

from app.billing.invoicing import issue_invoice
from app.billing.price_in_force import price_in_force_or_none
from domain.credit import Credit, CreditMode, credit_payment, payment_meta
from domain.enums import SubscriptionPaymentType
from domain.model import LineItem, Subscription, SubscriptionPayment
from domain.price_basis import CREDIT_KEY
from domain.subscription import apply_paid_payment
from ports.clock import Clock
from ports.storage import UnitOfWork, UnitOfWorkFactory


@attrs.frozen(kw_only=True)
class CompletedPayment:
    """What a completion changed; product handlers (spawn VM, IP range …) start from here.

    `cancelled_upgrades` are competing pending Upgrade payments that were expired in the same
    transaction; the caller cancels each one at its own provider (D13). `credit` says how
    much time a Purchase/Renewal really bought and why (None for an Upgrade); `payment`
    carries that time as its `time_value`. `cancelled_purchases` are the subscription's other
    pending Purchase payments (another method's invoice for the same order), expired in the
    same transaction when a Purchase is booked, to be cancelled at their provider after the
    commit: the order and its setup fee are paid once.
    """

    payment: SubscriptionPayment
    subscription_before: Subscription
    subscription: Subscription
    line_items: list[LineItem]
    revived_vms: int
    cancelled_upgrades: list[SubscriptionPayment]
    credit: Credit | None = None
    cancelled_purchases: list[SubscriptionPayment] = attrs.field(factory=list)

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
        found = await uow.payments.get(payment_id)
    if found is None or found.is_paid:
        return None
    async with uow_factory() as uow:
        # the subscription lock first, then the payment rows: every completion and every
        # lifecycle action takes locks in that order, so two payments of one subscription
        # completing together queue up instead of deadlocking. It is this transaction's first
        # statement, so what it reads next (the price in force) is what was committed before
        # the lock was granted, not an older snapshot (MariaDB snapshots at the first read).
        before = await uow.subscriptions.get_for_update(found.subscription_id)
        if before is None:  # impossible with the foreign key
            raise LookupError(f"payment {payment_id.hex()} has no subscription")
        if not await uow.payments.mark_paid(payment_id, now):
            return None
        payment = await uow.payments.get(payment_id) or found
        payment = attrs.evolve(cast(Any, payment), is_paid=False, paid_at=None)
        upgrade = payment.payment_type == SubscriptionPaymentType.UPGRADE
        revived = 0 if upgrade else await uow.vms.undelete_for_subscription(before.id)
        items = await uow.line_items.list_by_subscription(before.id)
        paid: SubscriptionPayment = attrs.evolve(cast(Any, payment), is_paid=True, paid_at=now)
        credit = None
        if upgrade:
            after = apply_paid_payment(before, payment, now)
        else:
            # the price in force NOW, read under the subscription lock: a quote made at
            # another price buys by value, never its old time (D23)
            purchase = payment.payment_type == SubscriptionPaymentType.PURCHASE
            current = await price_in_force_or_none(
                uow, before, items, purchase=purchase and not before.is_setup
            )
            credit = credit_payment(payment, before, current, now)
            after = apply_paid_payment(before, payment, now, new_expiry=credit.new_expiry)
            paid = _with_credit(paid, credit)
            await uow.payments.update(paid)
        if after != before:
            await uow.subscriptions.update(after)
        cancelled = await uow.payments.expire_pending_upgrades(before.id, payment_id, now)
        rivals: list[SubscriptionPayment] = []
        if payment.payment_type == SubscriptionPaymentType.PURCHASE:
            # the order is paid: another method's Purchase invoice for it must not stay
            # payable, or the setup fee (and the first interval) would be charged twice
            rivals = await uow.payments.expire_pending(
                before.id, now, types=(SubscriptionPaymentType.PURCHASE,), except_id=payment_id
            )
        done = CompletedPayment(
            payment=paid,
            subscription_before=before,
            subscription=after,
            line_items=items,
            revived_vms=revived,
            cancelled_upgrades=cancelled,
            credit=credit,
            cancelled_purchases=rivals,
        )
        await issue_invoice(uow, done)  # numbered in this transaction (issue 13)
        if record is not None:
            await record(uow, done)
        await uow.commit()
    return done


def _with_credit(paid: SubscriptionPayment, credit: Credit) -> SubscriptionPayment:
    """The paid row as stored: `time_value` = the seconds really added (it was the quote's
    estimate), and, unless it was plain calendar time, how it was counted in `metadata`."""
    evolved: SubscriptionPayment = attrs.evolve(cast(Any, paid), time_value=credit.seconds)
    if credit.mode is CreditMode.CALENDAR and not credit.changes:
        return evolved
    if paid.metadata is not None and not payment_meta(paid):
        return evolved  # metadata that is not a JSON object is kept as it was
    meta = {**payment_meta(paid), CREDIT_KEY: credit.to_json()}
    result: SubscriptionPayment = attrs.evolve(cast(Any, evolved), metadata=meta)
    return result
