"""The stored codes of the worker's lifecycle actions, and a period closed to renewal."""

from __future__ import annotations

from datetime import datetime

from domain.lifecycle import LifecycleAction
from ports.storage import UnitOfWork

_A = LifecycleAction
#: `lifecycle_mark.action` codes (a SMALLINT column); never renumber a stored code.
ACTION_CODES: dict[LifecycleAction, int] = {
    _A.EXPIRING_SOON_NOTICE: 1,
    _A.AUTO_RENEW_ATTEMPT: 2,
    _A.STOP_ON_EXPIRY: 3,
    _A.DEACTIVATE_ADDONS: 4,
    _A.DELETE_AFTER_GRACE: 5,
}

#: the actions before a period's end that would renew it or ask the user to
_RENEWING = (_A.EXPIRING_SOON_NOTICE, _A.AUTO_RENEW_ATTEMPT)


async def end_without_renewal(
    uow: UnitOfWork, subscription_id: int, period: datetime, now: datetime
) -> None:
    """Close the period ending `period` to renewal: its expiring-soon notice and auto-renewal
    attempt are claimed now (D15 marks, in the caller's transaction), so the worker neither
    renews it from the user's wallet or credit nor asks the user to renew it.

    For a refund, which ends the service at its start as a cancellation at the period's end
    does: renewing would buy back the very time just refunded. Auto-renewal stays switched on
    for whatever the user pays later (a new period, whose marks are its own), and the stop
    on expiry and the deletion after grace happen as for any period."""
    for action in _RENEWING:
        await uow.lifecycle_marks.claim(subscription_id, ACTION_CODES[action], period, now)
