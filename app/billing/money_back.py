"""A dispute or refund a card provider reports: recorded and told to the admins, once."""

from __future__ import annotations

import logging
from typing import Any

from app.billing.admin_notices import claim_notice, tell_admins
from app.billing.booked_records import money_text
from app.billing.order_refs import order_payment
from app.billing.rails import PaymentRails
from domain.enums import PaymentMethod, VmHistoryActionType
from domain.model import Subscription, SubscriptionPayment, vm_event
from ports.clock import Clock
from ports.payment_rail import DISPUTE, MoneyBack
from ports.queue import WorkQueue
from ports.storage import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

#: the VM history metadata key of a dispute or refund record.
MONEY_BACK_KEY = "money_back"


def _what(back: MoneyBack) -> str:
    return "dispute (chargeback)" if back.what == DISPUTE else "refund"


def _amount(back: MoneyBack, provider: str) -> str:
    if back.amount is None:
        return f"{provider} did not say how much"
    return f"{back.amount} {back.currency or '(currency not given)'} in {provider}'s smallest units"


async def report_money_back(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
    *,
    method: PaymentMethod,
    back: MoneyBack,
) -> bool:
    """Record a signed dispute or refund report of one of our payments and tell the admins;
    True when this call did (False: not ours, or a replay).

    The payment is the one the report names (`order_payment`: a Stripe PaymentIntent is
    resolved to its Checkout Session at Stripe). One naming none of ours is logged and
    ignored. The record goes on the payment (`claim_notice`, keyed by `back.key`, so a
    replayed or resent webhook records and tells nothing more) and, for a VM, into its
    history (STATE_CHANGED, as other money records are), in one transaction; then the admins
    are told, naming the payment, subscription, user and amounts, and an OPERATOR line is
    logged. Nothing else changes: the service is neither suspended nor shortened, the
    payment stays paid; what to do about it is the operator's call."""
    provider = method.display_name
    payment = await order_payment(uow_factory, rails, method, back.reference)
    if payment is None:
        log.warning(
            "%s %s of %r names no payment of ours: ignored (%s)",
            provider,
            back.what,
            back.reference,
            back.detail,
        )
        return False
    now = clock.now()
    record: dict[str, Any] = {
        "key": f"{method.api_name}:{back.what}:{back.key}",
        "what": back.what,
        "amount": back.amount,
        "currency": back.currency,
        "detail": back.detail,
        "at": now.isoformat(),
    }
    told: list[int] = []

    async def history(uow: UnitOfWork, sub: Subscription, paid: SubscriptionPayment) -> None:
        vm = await uow.vms.get_by_subscription(sub.id)
        if vm is None:
            return
        text = (
            f"{provider} reported a {_what(back)} of payment {paid.id.hex()}: {back.detail} "
            f"({_amount(back, provider)}); the service was not changed"
        )
        entry = vm_event(
            vm.id,
            VmHistoryActionType.STATE_CHANGED,
            now,
            text,
            metadata={MONEY_BACK_KEY: {**record, "payment_id": paid.id.hex()}},
        )
        await uow.vm_history.add(entry)
        told.append(vm.id)

    if not await claim_notice(uow_factory, payment, record, history):
        log.info("%s %s %s: reported already", provider, back.what, back.key)
        return False
    await _tell(queue, payment, method, back, told)
    return True


async def _tell(
    queue: WorkQueue,
    payment: SubscriptionPayment,
    method: PaymentMethod,
    back: MoneyBack,
    vm_ids: list[int],
) -> None:
    provider, hex_id = method.display_name, payment.id.hex()
    vms = f"VM {vm_ids[0]}" if vm_ids else "no VM"
    paid = "paid" if payment.is_paid else "NOT completed here"
    facts = (
        f"{provider} payment {hex_id} ({paid}, total {money_text(payment.currency, payment.total)}"
        f"), subscription {payment.subscription_id}, user {payment.user_id}, {vms}"
    )
    log.error(
        "OPERATOR: %s reports a %s of %s: %s; %s; nothing was changed here",
        provider,
        _what(back),
        facts,
        back.detail,
        _amount(back, provider),
    )
    text = "\n".join(
        [
            f"{provider} reports a {_what(back)} of {facts}.",
            f"What {provider} says: {back.detail}; amount: {_amount(back, provider)}.",
            f"{provider} reference: {back.key}.",
            "Nothing was changed here: the service was NOT suspended or shortened and the "
            "payment stays as it was. Decide by hand whether to stop or shorten the service "
            f"(admin API), settle it with the user, or answer the dispute at {provider}.",
        ]
    )
    title = f"{provider} {back.what} on payment {hex_id[:16]}…"
    await tell_admins(queue, payment, title, text)
