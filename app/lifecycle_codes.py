"""The stored codes of the worker's lifecycle actions, and a period closed to renewal."""

from __future__ import annotations

from datetime import datetime

from domain.lifecycle import AUTO_RENEW_RETRIES, LifecycleAction
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

#: r6: an auto-renewal that failed before its wallet was asked, for a passing cause, is tried
#: again (`domain.lifecycle.auto_renew_retry_at`). Retry k (1..AUTO_RENEW_RETRIES) claims
#: `AUTO_RENEW_RETRY_BASE + k`, once per period as the first attempt claims its own code (2);
#: the failure of attempt k (0: the first) is recorded as `AUTO_RENEW_FAILED_BASE + k`, at the
#: time it failed. A retry needs the failure of the attempt before it recorded, so an attempt
#: that asked the wallet (or whose end is not known) is never followed by another.
AUTO_RENEW_RETRY_BASE = 20
AUTO_RENEW_FAILED_BASE = 40


def auto_renew_code(attempt: int) -> int:
    """The mark an auto-renewal attempt claims (0: the period's first)."""
    return ACTION_CODES[_A.AUTO_RENEW_ATTEMPT] if attempt == 0 else AUTO_RENEW_RETRY_BASE + attempt


def auto_renew_failed_code(attempt: int) -> int:
    """The mark recording that attempt `attempt` failed before its wallet was asked."""
    return AUTO_RENEW_FAILED_BASE + attempt


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
    on expiry and the deletion after grace happen as for any period.

    Every retry of the auto-renewal is claimed too: a first attempt that had failed before
    its wallet was asked already holds its own code, and its recorded failure would
    otherwise let the retries buy the refunded period back (review r13a)."""
    for action in _RENEWING:
        await uow.lifecycle_marks.claim(subscription_id, ACTION_CODES[action], period, now)
    for attempt in range(1, AUTO_RENEW_RETRIES + 1):
        await uow.lifecycle_marks.claim(subscription_id, auto_renew_code(attempt), period, now)
