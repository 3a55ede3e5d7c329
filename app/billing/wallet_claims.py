"""The automatic renewal's claim on its wallet's invoice, taken and ended under the
subscription's lock (`domain.wallet_claim`): one period is bought once."""

from __future__ import annotations

from datetime import datetime

import attrs

from app.billing.credit_quote import paid_by_credit_alone
from app.billing.errors import WalletInvoiceEnded
from app.billing.persist import refuse_moved_period
from domain.model import Subscription, SubscriptionPayment
from domain.switch_off import refuse_switched_off
from domain.wallet_claim import claimed, claimed_period_of
from ports.storage import UnitOfWork, UnitOfWorkFactory


async def claim_for_wallet(
    uow_factory: UnitOfWorkFactory, payment: SubscriptionPayment, period: datetime, now: datetime
) -> SubscriptionPayment:
    """Claim `payment` for the period ending `period`, just before the wallet is asked to
    pay it; the payment as claimed (committed).

    The decision to ask the wallet is taken here, under the subscription's lock, which every
    completion takes first: a renewal completed since `renew` handed the invoice out (the
    user paid one of their own) has moved the expiry, and this refuses with
    `RenewalNoLongerDue` (nothing is charged); a subscription switched off meanwhile with
    `SubscriptionSwitchedOff`; an invoice no longer payable (paid, expired, withdrawn by a
    price change or a deletion) or whose metadata cannot carry the claim with
    `WalletInvoiceEnded`. Once committed, a completion that moves the expiry ends the claimed
    invoice (`end_claims`), and a payment of it that lands anyway buys no time
    (`domain.wallet_claim.claim_overtaken`, booked as account credit)."""
    async with uow_factory() as uow:
        sub = await uow.subscriptions.get_for_update(payment.subscription_id)
        refuse_moved_period(sub, period)
        assert sub is not None  # `refuse_moved_period` refuses a missing one
        refuse_switched_off(sub)
        current = await uow.payments.get(payment.id)
        if current is None or not current.is_pending(now):
            raise WalletInvoiceEnded("The renewal invoice ended before the wallet could pay it")
        claim = claimed(current, period)
        if claim is None:
            raise WalletInvoiceEnded("The renewal invoice cannot be claimed for the wallet")
        await uow.payments.update(claim)
        await uow.commit()
    return claim


async def end_claims(
    uow: UnitOfWork, before: Subscription, paying: bytes, now: datetime
) -> list[SubscriptionPayment]:
    """In a booking that moved the subscription's expiry (`paying` renewed it): its other
    pending invoices an automatic renewal claimed are expired, and returned as they were so
    that each is cancelled at the node after the commit. Their period is paid; a wallet that
    has not paid yet is then refused by the node, and one whose payment lands anyway is
    booked as credit. Read only for a subscription with automatic renewal on (no claim is
    taken for another); one turned off while a claim was out leaves that invoice to lapse,
    its late payment still booked as credit."""
    if not before.auto_renewal_enabled:
        return []
    ended = []
    for pending in await uow.payments.list_pending_for_subscription(before.id, now):
        if pending.id != paying and claimed_period_of(pending.metadata) is not None:
            await uow.payments.update(attrs.evolve(pending, expires=now))
            ended.append(pending)
    return ended


def credit_alone_claim(payment: SubscriptionPayment) -> bool:
    """An automatic renewal paid from account credit alone: claimed for its period when it
    was stored (`app.billing.credit_quote.issue`), no wallet asked. The worker spent that
    credit for the user, so a booking in which it would buy nothing (its period renewed
    otherwise, its VM deleted and not restorable, …) books nothing and the credit comes
    back (`settle_covered`), rather than being booked as credit with a notice about it."""
    return paid_by_credit_alone(payment) and claimed_period_of(payment.metadata) is not None


def overtaken_why(sub: Subscription, period: datetime) -> str:
    """For the admins: why the wallet's payment of a claimed invoice bought no time."""
    return (
        f"automatic renewal of subscription {sub.id} for the period ending "
        f"{period.isoformat()} was paid by the wallet after that period had been renewed "
        "otherwise (a renewal paid by hand, or an admin's change of the expiry): one period "
        "is bought once, so its value is account credit"
    )


#: what the payer of a wallet payment that lost its period to another renewal is told
OVERTAKEN_NOTE = (
    "was an automatic renewal from your wallet that arrived after the same period had already "
    "been renewed, so it bought no second period"
)
