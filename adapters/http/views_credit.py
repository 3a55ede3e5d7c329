"""JSON of the account credit balance and its ledger entries, with their schemas."""

from __future__ import annotations

from typing import Any

from adapters.http.envelope import format_time
from adapters.http.openapi import Schema
from adapters.http.views_schema import CURRENCY, DATETIME, STRING, U64, nullable, obj
from domain.account_credit import CreditEntry, CreditParts, CreditReason

#: the part of a balance (or of an entry) that is VAT-free credit (added to LNVPS's shape)
VAT_FREE: Schema = {
    "type": "integer",
    "description": (
        "the part of `amount` that is VAT-free account credit (money kept as credit that "
        "bore no VAT, such as an upgrade paid but not applied): it counts whole towards an "
        "untaxed purchase (an upgrade) and VAT-inclusive towards a taxed one (a renewal "
        "pays its net and the VAT on it from it); the rest is net credit. Smallest units."
    ),
}
#: one currency's balance, smallest units (cents, msat), as PRICE_SCHEMA is, and its
#: VAT-free part
CREDIT_BALANCE_SCHEMA = obj({"currency": CURRENCY, "amount": U64, "vat_free": VAT_FREE})
CREDIT_BALANCES_SCHEMA: Schema = {"type": "array", "items": CREDIT_BALANCE_SCHEMA}
CREDIT_REASON: Schema = {"type": "string", "enum": [r.wire_name for r in CreditReason]}
CREDIT_ENTRY_SCHEMA = obj(
    {
        "id": U64,
        "currency": CURRENCY,
        "amount": {"type": "integer", "description": "signed, smallest units"},
        "vat_free": VAT_FREE,
        "reason": CREDIT_REASON,
        "reference": nullable(STRING),
        "note": nullable(STRING),
        "created": DATETIME,
    }
)


def balances_json(balances: dict[str, CreditParts]) -> list[dict[str, Any]]:
    """Every currency with a non-zero balance, by code, with its VAT-free part (`vat_free`,
    a key LNVPS's shape did not have: its clients read `currency` and `amount` as before)."""
    return [
        {"currency": c, "amount": p.total, "vat_free": p.vat_free}
        for c, p in sorted(balances.items())
        if p.total
    ]


def credit_entry_json(entry: CreditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "currency": entry.currency,
        "amount": entry.amount,
        "vat_free": entry.vat_free,
        "reason": entry.reason.wire_name,
        "reference": entry.reference,
        "note": entry.note,
        "created": format_time(entry.created),
    }
