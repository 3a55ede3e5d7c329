"""Storage ports that make repeated work harmless: lifecycle marks and idempotency keys."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Protocol

import attrs


@attrs.frozen(kw_only=True)
class IdempotencyRecord:
    """A remembered `Idempotency-Key` of a user's POST and the payment it produced (D11)."""

    key: str
    user_id: int
    request_hash: bytes
    payment_id: bytes | None
    created: datetime


#: `lifecycle_mark.action` of the never-paid IP-range cleanup (its period: the order time).
#: The worker's lifecycle actions use codes 1-5 (`app.lifecycle_codes.ACTION_CODES`) and the
#: auto-renewal retries 21-36 and 40-55 (`app.lifecycle_codes.auto_renew_code`); the
#: storage adapters read this one too, to leave cleaned-up orders out of their scans.
NEVER_PAID_CLEANUP: Final = 6


class LifecycleMarks(Protocol):
    async def claim(
        self, subscription_id: int, action: int, period_expires: datetime, now: datetime
    ) -> bool:
        """Record that `action` runs for the period ending `period_expires`.

        True for the first claimant only; False when the mark exists already (D15). On a
        shared database a concurrent second claim waits for the first transaction and then
        gets False, or True if the first rolled back.
        """
        ...

    async def is_claimed(self, subscription_id: int, action: int, period_expires: datetime) -> bool:
        """Whether the mark exists (a plain read: the claim itself is what decides)."""
        ...

    async def claims(self, subscription_id: int, period_expires: datetime) -> dict[int, datetime]:
        """Every mark of the period ending `period_expires`: action code → when claimed (a
        plain read, as `is_claimed`)."""
        ...


class IdempotencyKeys(Protocol):
    async def get(self, user_id: int, key: str) -> IdempotencyRecord | None: ...

    async def put(self, record: IdempotencyRecord) -> bool:
        """Store the key; False (and nothing written) when the user already used it."""
        ...
