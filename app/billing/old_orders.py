"""A card webhook for an order whose quote lapsed long ago is not booked, as the sweep's rule."""

from __future__ import annotations

import logging

from app.billing.admin_notices import claim_notice, tell_admins
from app.billing.lapsed_orders import COMPLETE_WITHIN
from domain.model import SubscriptionPayment
from ports.clock import Clock
from ports.queue import WorkQueue
from ports.storage import UnitOfWorkFactory

log = logging.getLogger(__name__)

#: the notice key of an old order refused on its webhook (told once per payment).
OLD_ORDER_NOTICE = "webhook:old-order"


async def old_order_refused(
    uow_factory: UnitOfWorkFactory, clock: Clock, queue: WorkQueue, payment: SubscriptionPayment
) -> bool:
    """True when the unpaid `payment`, which its provider says is paid, must not be booked
    on its webhook: its quote lapsed more than `COMPLETE_WITHIN` ago.

    The lapsed-order sweep refuses such an order (providers keep saying "paid" after a
    refund), and so must the webhook: a Stripe retry, or a dashboard "resend" of an order
    the operator refunded by hand, would otherwise buy time (or restore a deleted VM) for
    nothing. The admins are told once (`claim_notice`), an OPERATOR line logged each time,
    and the webhook answers 200 so the provider stops sending it.
    """
    now = clock.now()
    if payment.is_paid or payment.expires >= now - COMPLETE_WITHIN:
        return False
    provider, ref = payment.payment_method.display_name, payment.id.hex()
    reason = (
        f"its quote lapsed on {payment.expires:%Y-%m-%d %H:%M} UTC, more than "
        f"{COMPLETE_WITHIN.days} days ago: too old to complete automatically (the provider "
        "also says paid after a refund)"
    )
    log.error(
        "OPERATOR: %s webhook says order %s of payment %s is paid, but it is NOT completed "
        "here: %s; check it by hand",
        provider,
        payment.external_id,
        ref,
        reason,
    )
    record = {"key": OLD_ORDER_NOTICE, "at": now.isoformat()}
    if await claim_notice(uow_factory, payment, record):
        await tell_admins(
            queue,
            payment,
            f"Old {provider} payment {ref[:16]}… paid there, not booked",
            f"{provider}'s webhook says order {payment.external_id} of payment {ref} "
            f"(subscription {payment.subscription_id}, user {payment.user_id}) is paid, but "
            f"it was never completed here and {reason}. It was not completed. Check it by "
            f"hand at {provider}: if it was refunded or settled already, nothing is to be "
            "done; if the customer's payment stands, complete it by hand (admin: complete "
            "payment) or settle it with the customer.",
        )
    return True
