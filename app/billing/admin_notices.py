"""Notices to the admins about one payment, kept on the payment so each is sent once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs

from domain.credit import payment_meta
from domain.model import Subscription, SubscriptionPayment
from ports.jobs import SendAdminNotification
from ports.queue import WorkQueue
from ports.storage import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

#: the payment `metadata` key listing the notices sent about it: `[{"key": …, …}, …]`.
NOTICES_KEY: Final = "admin_notices"

#: writes what goes with a notice (history entries) in the transaction that claims it.
AlsoWrite = Callable[[UnitOfWork, Subscription, SubscriptionPayment], Awaitable[None]]


def notices_of(payment: SubscriptionPayment) -> list[dict[str, Any]]:
    """The notices recorded on the payment, oldest first."""
    found = payment_meta(payment).get(NOTICES_KEY)
    return [n for n in found if isinstance(n, dict)] if isinstance(found, list) else []


async def claim_notice(
    uow_factory: UnitOfWorkFactory,
    payment: SubscriptionPayment,
    record: dict[str, Any],
    also: AlsoWrite | None = None,
) -> bool:
    """Record the notice `record` (its `"key"` names it) on the payment, with what `also`
    writes, in one transaction; True when this call recorded it (send it then), False when
    the payment already carries a notice of that key (a replayed webhook: send nothing).

    The subscription's lock is taken first, as completion takes it, so two deliveries of
    one event queue up and the second finds the first's record. A payment whose metadata is
    not a JSON object cannot carry the record: True (better told twice than never), logged.
    """
    async with uow_factory() as uow:
        sub = await uow.subscriptions.get_for_update(payment.subscription_id)
        current = await uow.payments.get(payment.id)
        if sub is None or current is None:  # impossible with the foreign key
            raise LookupError(f"payment {payment.id.hex()} has no subscription")
        if any(n.get("key") == record["key"] for n in notices_of(current)):
            return False
        if current.metadata is not None and not payment_meta(current):
            log.warning(
                "payment %s: its metadata is not a JSON object, so notice %r is not recorded "
                "on it (a replay will be told again)",
                current.id.hex(),
                record["key"],
            )
        else:
            meta = {**payment_meta(current), NOTICES_KEY: [*notices_of(current), record]}
            await uow.payments.update(attrs.evolve(current, metadata=meta))
        if also is not None:
            await also(uow, sub, current)
        await uow.commit()
    return True


async def tell_admins(
    queue: WorkQueue, payment: SubscriptionPayment, title: str, text: str
) -> None:
    """Queue the admins' notice; best effort (its record, and an OPERATOR log line, stay)."""
    try:
        await queue.send(SendAdminNotification(title=title, message=text))
    except Exception:
        log.exception("could not queue the admins' notice about payment %s", payment.id.hex())
