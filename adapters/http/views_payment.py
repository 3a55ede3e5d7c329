"""JSON of payments and upgrade quotes (api.md §5.4) and their OpenAPI schemas."""

from __future__ import annotations

import json
import logging
from typing import Any

from adapters.http.envelope import format_time
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.model import SubscriptionPayment
from domain.money import Money
from domain.unreadable import Unreadable
from domain.upgrade import UpgradeQuote

log = logging.getLogger("lnvps.http")

_DT = {"type": "string", "format": "date-time"}
_U64 = {"type": "integer", "minimum": 0}

PRICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"currency": {"type": "string"}, "amount": _U64},
    "required": ["currency", "amount"],
}

PAYMENT_DATA_SCHEMA: dict[str, Any] = {
    "description": "Externally tagged by method (lowercase)",
    "oneOf": [
        {
            "type": "object",
            "properties": {"lightning": {"type": "string"}},
            "required": ["lightning"],
        },
        {
            "type": "object",
            "required": ["revolut"],
            "properties": {
                "revolut": {"type": "object", "properties": {"token": {"type": ["string", "null"]}}}
            },
        },
        {
            "type": "object",
            "required": ["stripe"],
            "properties": {
                "stripe": {
                    "type": "object",
                    "properties": {
                        "session_id": {"type": ["string", "null"]},
                        "url": {"type": ["string", "null"]},
                    },
                }
            },
        },
        *(
            {
                "type": "object",
                "required": [method.api_name],
                "properties": {method.api_name: {"type": "object"}},
            }
            for method in PaymentMethod
            if method not in (PaymentMethod.LIGHTNING, PaymentMethod.REVOLUT, PaymentMethod.STRIPE)
        ),
    ],
}

VM_PAYMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "hex payment id"},
        "vm_id": _U64,
        "created": _DT,
        "expires": _DT,
        "amount": {**_U64, "description": "net, smallest unit of `currency` (msat for BTC)"},
        "tax": _U64,
        "processing_fee": _U64,
        "currency": {"type": "string"},
        "is_paid": {"type": "boolean"},
        "paid_at": {**_DT, "description": "omitted unless paid"},
        "data": PAYMENT_DATA_SCHEMA,
        "time": {**_U64, "description": "seconds of service this payment adds"},
        "is_upgrade": {"type": "boolean"},
        "upgrade_params": {"type": "string", "description": "JSON text; upgrades only"},
    },
    "required": [
        "id",
        "vm_id",
        "created",
        "expires",
        "amount",
        "tax",
        "processing_fee",
        "currency",
        "is_paid",
        "data",
        "time",
        "is_upgrade",
    ],
}

UPGRADE_QUOTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "cost_difference": PRICE_SCHEMA,
        "new_renewal_cost": PRICE_SCHEMA,
        "discount": PRICE_SCHEMA,
    },
    "required": ["cost_difference", "new_renewal_cost", "discount"],
}


def price_json(money: Money) -> dict[str, Any]:
    return {"currency": money.currency.value, "amount": money.amount}


def _provider_json(payment: SubscriptionPayment) -> dict[str, Any]:
    if isinstance(payment.external_data, Unreadable):
        return {}  # the storage logged it; `_lightning` says why
    try:
        value = json.loads(payment.external_data)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        log.warning("payment %s: provider data is not a JSON object", payment.id.hex())
        return {}
    return value


def _bolt11(payment: SubscriptionPayment) -> str:
    """The invoice; "" (as for a quote the balance paid) when its stored text cannot be
    decrypted, so one bad payment does not fail the list it is in."""
    return payment.external_data if isinstance(payment.external_data, str) else ""


def _stripe_json(stored: dict[str, Any]) -> dict[str, Any]:
    """`{session_id, url}` of a Checkout Session; older payments stored `session_id` itself
    (or a bare PaymentIntent, which has none)."""
    if stored.get("object") == "checkout.session":
        return {"session_id": stored.get("id"), "url": stored.get("url")}
    return {"session_id": stored.get("session_id")}


def payment_data_json(payment: SubscriptionPayment) -> dict[str, Any]:
    """ApiPaymentData, tagged by the method's wire name: `{"lightning": bolt11}`,
    `{"revolut": {"token"}}`, `{"stripe": {"session_id", "url"?}}`; any other rail shows the
    JSON object its charge stored (a bank transfer: account details and reference).

    A provider payload without the expected key gives `null` there rather than a 500.
    """
    method = payment.payment_method
    if method is PaymentMethod.LIGHTNING:
        return {"lightning": _bolt11(payment)}
    stored = _provider_json(payment)
    if method is PaymentMethod.REVOLUT:
        return {"revolut": {"token": stored.get("token")}}
    if method is PaymentMethod.STRIPE:
        return {"stripe": _stripe_json(stored)}
    return {method.api_name: stored}


def upgrade_params(payment: SubscriptionPayment) -> str | None:
    """The upgrade request as the reference's JSON text, for Upgrade payments only.

    Renewal payments carry our own `{"intervals": n}` metadata, which is not an upgrade.
    """
    if payment.payment_type is not SubscriptionPaymentType.UPGRADE:
        return None
    meta = payment.metadata
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            return None
    if not isinstance(meta, dict):
        return None
    fields = {k: meta.get(k) for k in ("new_cpu", "new_memory", "new_disk")}
    return json.dumps(fields, separators=(",", ":"))


def vm_payment_json(payment: SubscriptionPayment, vm_id: int) -> dict[str, Any]:
    """ApiVmPayment in the reference's field order; `paid_at`/`upgrade_params` omitted if unset."""
    out: dict[str, Any] = {
        "id": payment.id.hex(),
        "vm_id": vm_id,
        "created": format_time(payment.created),
        "expires": format_time(payment.expires),
        "amount": payment.amount,
        "tax": payment.tax,
        "processing_fee": payment.processing_fee,
        "currency": payment.currency,
        "is_paid": payment.is_paid,
    }
    if payment.is_paid and payment.paid_at is not None:
        out["paid_at"] = format_time(payment.paid_at)
    out["data"] = payment_data_json(payment)
    out["time"] = payment.time_value or 0
    out["is_upgrade"] = payment.payment_type is SubscriptionPaymentType.UPGRADE
    params = upgrade_params(payment)
    if params is not None:
        out["upgrade_params"] = params
    return out


def upgrade_quote_json(quote: UpgradeQuote) -> dict[str, Any]:
    return {
        "cost_difference": price_json(quote.upgrade.money),
        "new_renewal_cost": price_json(quote.renewal.money),
        "discount": price_json(quote.discount.money),
    }
