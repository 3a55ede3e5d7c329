"""Disabling or deleting a payment-method config: its pending payments end (D24), and a method's
only webhook signing secret stays while payments of the method could still be settled."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from app.billing.rail_settings import webhook_secret_of
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.errors import DomainError
from domain.model import PaymentMethodConfig, SubscriptionPayment
from ports.storage import PendingOf, UnitOfWork

#: how long after a payment expires a provider may still deliver its webhook: Stripe retries
#: a failed delivery for up to three days, Revolut and Bitvora for less. A payment that lapsed
#: within it may still be paid and its webhook credited (D23: by value), so the secret that
#: verifies it is kept that long.
WEBHOOK_RETRY_HORIZON = timedelta(days=3)
_EVERY_TYPE = tuple(SubscriptionPaymentType)


class SecretStillNeeded(DomainError):
    """Deleting the config that holds a method's only webhook secret while payments of the
    method could still be settled (409)."""

    kind = "conflict"


async def expire_pending_of(
    uow: UnitOfWork, config: PaymentMethodConfig, now: datetime
) -> list[SubscriptionPayment]:
    """Expire the pending payments of the config's method on its company's subscriptions, in
    the transaction that disables or deletes it: a method no longer offered takes no more
    money (D24: what ends its service ends what is pending). Each subscription is locked
    before its payments (completion's lock order), ascending; the expired ones are returned,
    as they were, for `cancel_quietly` after the commit. A webhook that still comes for one is
    verified (`check_secret_kept`) and credited by value (D23).

    A Lightning row withdraws nothing: Lightning is the server's own node (settings file),
    the row only lists it and carries no fee (a disabled row hides it from the method list,
    as the reference does), so its pending invoices stay payable (review r13b)."""
    method = config.payment_method
    if method is PaymentMethod.LIGHTNING:
        return []
    pending = await uow.payments.unpaid_of_method(method, now, company_id=config.company_id)
    expired: list[SubscriptionPayment] = []
    for subscription_id in sorted({p.subscription_id for p in pending}):
        await uow.subscriptions.get_for_update(subscription_id)
        which = PendingOf(subscription_id, _EVERY_TYPE, method=method)
        expired += await uow.payments.expire_pending(which, now)
    return expired


async def check_secret_kept(
    uow: UnitOfWork,
    config: PaymentMethodConfig,
    now: datetime,
    signed_by_settings: Collection[PaymentMethod],
) -> None:
    """`SecretStillNeeded` when deleting `config` removes the only copy of its method's
    webhook secret (none in the settings file, `signed_by_settings`, nor the same one in
    another config row, enabled or not) while a payment of the method, of any company, is
    unpaid and pending or expired within `WEBHOOK_RETRY_HORIZON`: its webhook would then
    answer 503 and a customer who paid would get nothing. Every company's payments count:
    the provider keys come from the settings file, so all companies' orders are made on one
    provider account, whose webhooks one secret signs, and that secret may be kept in any
    company's row (review r15; a narrowing to the row's own company, tried for r13b, let a
    delete strand another company's paid order)."""
    secret = webhook_secret_of(config)
    method = config.payment_method
    if not secret or method in signed_by_settings:
        return
    for row in await uow.payment_methods.list_all():
        if (
            row.id != config.id
            and row.payment_method is method
            and webhook_secret_of(row) == secret
        ):
            return
    settleable = await uow.payments.unpaid_of_method(method, now - WEBHOOK_RETRY_HORIZON)
    if settleable:
        raise SecretStillNeeded(
            f"Cannot delete this {method.display_name} config: it holds the only webhook "
            f"signing secret and {len(settleable)} unpaid {method.display_name} payment(s) "
            "could still be paid (pending, or expired less than "
            f"{WEBHOOK_RETRY_HORIZON.days} days ago). Disable it instead (its pending "
            "payments are expired and late webhooks still verified), or put the secret in "
            "the settings file first"
        )
