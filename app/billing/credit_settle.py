"""The `Settle` callback quotes paid from credit use: the normal completion use case."""

from __future__ import annotations

from app.billing.completion import complete_payment
from app.billing.credit_quote import Settle
from app.billing.rails import PaymentRails
from ports.clock import Clock
from ports.queue import WorkQueue
from ports.storage import UnitOfWorkFactory


def completion_settle(
    uow_factory: UnitOfWorkFactory, clock: Clock, rails: PaymentRails, queue: WorkQueue
) -> Settle:
    """Complete a payment by id through `complete_payment` (exactly once, D9)."""

    async def settle(payment_id: bytes) -> object:
        return await complete_payment(uow_factory, clock, rails, queue, payment_id=payment_id)

    return settle
