"""Deleting ends what is pending (D24): expire a deleted service's invoices, then cancel them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from app.worker.context import WorkerDeps
from domain.enums import SubscriptionPaymentType
from domain.model import SubscriptionPayment
from ports.storage import PendingOf, UnitOfWork

log = logging.getLogger("lnvps.worker.pending")

#: every kind of payment stops being payable when its service is deleted
ALL_TYPES = tuple(SubscriptionPaymentType)


async def end_pending(
    uow: UnitOfWork, subscription_id: int, now: datetime
) -> list[SubscriptionPayment]:
    """Expire the subscription's pending payments inside the deleting transaction (D24).

    Returns them as they were, for `cancel_ended` once the deletion has committed: a deleted
    VM then stops looking payable, and the never-paid cleanup is not kept waiting by them.
    """
    return await uow.payments.expire_pending(PendingOf(subscription_id, ALL_TYPES), now)


async def cancel_ended(deps: WorkerDeps, payments: Iterable[SubscriptionPayment]) -> None:
    """Cancel each expired payment at its own rail, after the commit (as D13 does).

    A rail that refuses or is down is logged: the payment is already expired here, and one
    that is still paid is credited and restores the VM (D24), so nothing is lost.
    """
    if deps.payment_canceller is None:
        return
    for payment in payments:
        try:
            await deps.payment_canceller.cancel(payment)
        except Exception as err:
            reason = getattr(err, "message", None) or repr(err)
            log.warning("could not cancel payment %s: %s", payment.id.hex(), reason)
