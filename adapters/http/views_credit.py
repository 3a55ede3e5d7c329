"""JSON of the account credit balance and its ledger entries, with their schemas."""

from __future__ import annotations

from typing import Any

from adapters.http.envelope import format_time
from adapters.http.openapi import Schema
from adapters.http.views_schema import CURRENCY, DATETIME, STRING, U64, nullable, obj
from domain.account_credit import CreditEntry, CreditReason

#: one currency's balance, smallest units (cents, msat), as PRICE_SCHEMA is
CREDIT_BALANCE_SCHEMA = obj({"currency": CURRENCY, "amount": U64})
CREDIT_BALANCES_SCHEMA: Schema = {"type": "array", "items": CREDIT_BALANCE_SCHEMA}
CREDIT_REASON: Schema = {"type": "string", "enum": [r.wire_name for r in CreditReason]}
CREDIT_ENTRY_SCHEMA = obj(
    {
        "id": U64,
        "currency": CURRENCY,
        "amount": {"type": "integer", "description": "signed, smallest units"},
        "reason": CREDIT_REASON,
        "reference": nullable(STRING),
        "note": nullable(STRING),
        "created": DATETIME,
    }
)


def balances_json(balances: dict[str, int]) -> list[dict[str, Any]]:
    """Every currency with a non-zero balance, by code."""
    return [{"currency": c, "amount": a} for c, a in sorted(balances.items()) if a]


def credit_entry_json(entry: CreditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "currency": entry.currency,
        "amount": entry.amount,
        "reason": entry.reason.wire_name,
        "reference": entry.reference,
        "note": entry.note,
        "created": format_time(entry.created),
    }
