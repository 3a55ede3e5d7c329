"""Storage port of settlements the intake could not complete: kept for the operator."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import attrs


@attrs.frozen(kw_only=True)
class SettlementProblem:
    """A Lightning settlement of one of our payments that completing refused for good (a
    rule no retry changes, or less received than invoiced), or that failed too many times
    in a row (a recurring conflict, a bug); the intake went on past it. An admin completing
    the payment completes it with `amount_paid_msat` (its excess becomes account credit).

    `id` is 0 until stored. `error` names the refusal, `message` says it in words.
    """

    id: int
    payment_id: bytes
    settle_index: int
    amount_paid_msat: int
    error: str
    message: str
    created: datetime


class SettlementProblems(Protocol):
    async def record(self, problem: SettlementProblem) -> bool:
        """Store it; False (and nothing written) when one for that payment is stored already,
        so a replayed settlement is recorded (and reported) once."""
        ...

    async def get_by_payment(self, payment_id: bytes) -> SettlementProblem | None:
        """The problem recorded for that payment (at most one is), or None."""
        ...

    async def list_recent(self, limit: int) -> list[SettlementProblem]:
        """The newest first (id descending), at most `limit`."""
        ...
