"""An account's credit balance: append-only ledger entries per currency, never below zero."""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from typing import Any

import attrs

from domain.errors import DomainError, InvalidInput
from domain.money import Currency

#: `metadata` key of a payment part of which was paid from the account balance.
CREDIT_APPLIED_KEY = "credit_applied"
#: longest reference and note a ledger entry keeps (the SQL column widths).
MAX_REFERENCE = 100
MAX_NOTE = 255
#: the largest single entry (|amount|) accepted: far above any real balance, inside BIGINT.
MAX_ENTRY = 10**15


class CreditReason(IntEnum):
    """Why an entry moved the balance; the codes are stored, the names are on the wire."""

    OVERPAYMENT = 0  # a payment for a service that can no longer be delivered
    DOWNGRADE_CREDIT = 1  # reserved: downgrades are refused today (D8)
    REFUND_TO_CREDIT = 2  # an admin refund of unused time, kept as credit
    ADMIN_ADJUSTMENT = 3  # an admin's correction, either sign, with a note
    SPENT = 4  # applied to a renewal or upgrade quote
    RELEASED = 5  # a quote that used credit expired unpaid: the credit comes back

    @property
    def wire_name(self) -> str:
        return self.name.lower()

    @classmethod
    def from_wire(cls, text: str) -> CreditReason:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise InvalidInput(f"unknown credit reason: {text}") from None


class InsufficientCredit(DomainError):
    """The entry would take the balance below zero."""

    kind = "unprocessable"


@attrs.frozen(kw_only=True)
class CreditEntry:
    """One movement of a user's balance in one currency (`amount` signed, smallest units).

    `reference` ties the entry to what caused it (a payment id in hex, a VM id); the same
    (user, currency, reason, reference) is booked at most once, which makes replays harmless.
    `admin_id` is the admin who made an adjustment or refund (None for the system).
    """

    id: int
    user_id: int
    currency: str
    amount: int
    reason: CreditReason
    reference: str | None
    note: str | None
    created: datetime
    admin_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "currency": self.currency,
            "amount": self.amount,
            "reason": self.reason.wire_name,
            "reference": self.reference,
            "note": self.note,
            "created": self.created.isoformat(),
        }


def checked_entry(
    *,
    user_id: int,
    currency: str,
    amount: int,
    reason: CreditReason,
    reference: str | None,
    note: str | None,
    created: datetime,
    admin_id: int | None = None,
) -> CreditEntry:
    """A new entry (id 0) after checking its shape: a known currency, a non-zero integer
    amount within bounds, the sign its reason implies, bounded texts."""
    code = Currency.parse(currency).value
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput("amount must be an integer in smallest units")
    if amount == 0 or abs(amount) > MAX_ENTRY:
        raise InvalidInput(f"amount must be non-zero and at most {MAX_ENTRY} in size")
    if reason is CreditReason.SPENT and amount > 0:
        raise InvalidInput("spending credit must be a negative amount")
    if reason not in (CreditReason.SPENT, CreditReason.ADMIN_ADJUSTMENT) and amount < 0:
        raise InvalidInput(f"a {reason.wire_name} entry must be a positive amount")
    if reference is not None and not 0 < len(reference) <= MAX_REFERENCE:
        raise InvalidInput(f"reference must be 1..{MAX_REFERENCE} characters")
    if note is not None and len(note) > MAX_NOTE:
        raise InvalidInput(f"note must be at most {MAX_NOTE} characters")
    return CreditEntry(
        id=0,
        user_id=user_id,
        currency=code,
        amount=amount,
        reason=reason,
        reference=reference,
        note=note,
        created=created,
        admin_id=admin_id,
    )


def balance_after(balance: int, entry: CreditEntry) -> int:
    """The balance once `entry` is booked; `InsufficientCredit` if it would go below zero."""
    after = balance + entry.amount
    if after < 0:
        raise InsufficientCredit(
            f"Not enough credit: the balance is {balance} {entry.currency} (smallest units)"
        )
    return after


def credit_applied(meta: dict[str, Any]) -> tuple[int, str] | None:
    """The (amount, currency) of balance a payment's metadata says was applied, if any."""
    value = meta.get(CREDIT_APPLIED_KEY)
    if not isinstance(value, dict):
        return None
    amount, currency = value.get("amount"), value.get("currency")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        return None
    return (amount, currency) if isinstance(currency, str) else None


def applied_json(amount: int, currency: str) -> dict[str, Any]:
    """The `credit_applied` metadata value the invoice renders as its credit line."""
    return {"amount": amount, "currency": currency}
