"""JSON of the account, SSH keys and subscriptions (api.md §5.1, §5.3, §5.5) with schemas."""

from __future__ import annotations

from typing import Any

from adapters.http.bounds import ID_SCHEMA
from adapters.http.envelope import format_optional_time, format_time
from adapters.http.openapi import Schema
from adapters.http.views_input import Body, patch_text, required_boolean
from adapters.http.views_schema import CURRENCY, DATETIME, PRICE_SCHEMA, STRING, U64, nullable, obj
from app.account.profile import (
    EMAIL_LIMIT,
    FIELD_LIMITS,
    NWC_LIMIT,
    AccountPatch,
    mask_nwc,
)
from app.account.ssh_keys import COMMENT_LIMIT, KEY_DATA_LIMIT
from app.account.ssh_keys import NAME_LIMIT as SSH_NAME_LIMIT
from app.billing.ip_purchase import DESCRIPTION_LIMIT, MAX_LINE_ITEMS
from app.billing.ip_purchase import NAME_LIMIT as SUBSCRIPTION_NAME_LIMIT
from app.queries.subscriptions import RangeView, SubscriptionView
from domain.enums import PaymentMethod
from domain.errors import UnknownCurrency
from domain.model import LineItem, SshKey, SubscriptionPayment, User
from domain.money import Currency
from domain.text_rules import HOST_NAME_MAX

JsonObject = dict[str, Any]

#: AccountInfo's nullable text fields: wire name → `User` attribute.
ACCOUNT_TEXT_FIELDS = {
    "country_code": "country_code",
    "name": "billing_name",
    "address_1": "billing_address_1",
    "address_2": "billing_address_2",
    "state": "billing_state",
    "city": "billing_city",
    "postcode": "billing_postcode",
    "tax_id": "billing_tax_id",
    "nwc_connection_string": "nwc_connection_string",
}


def account_json(user: User) -> JsonObject:
    """AccountInfo: `email`/`email_verified` omitted without an address, the rest always sent."""
    out: JsonObject = {}
    if user.email:
        out["email"] = user.email
        out["email_verified"] = user.email_verified
    out["contact_nip17"] = user.contact_nip17
    out["contact_email"] = user.contact_email
    for wire, attr in ACCOUNT_TEXT_FIELDS.items():
        out[wire] = getattr(user, attr)
    out["nwc_connection_string"] = mask_nwc(user.nwc_connection_string)  # D28: never in full
    return out


def account_patch(body: Body) -> AccountPatch:
    """A PATCH body: the two contact flags are required; `email_verified` is ignored."""
    texts = {wire: patch_text(body, wire) for wire in ACCOUNT_TEXT_FIELDS}
    return AccountPatch(
        contact_nip17=required_boolean(body, "contact_nip17"),
        contact_email=required_boolean(body, "contact_email"),
        email=patch_text(body, "email"),
        **texts,
    )


def ssh_key_json(key: SshKey) -> JsonObject:
    """ApiUserSshKey: the key material is never returned."""
    return {"id": key.id, "name": key.name, "created": format_time(key.created)}


def _label(code: str) -> str:
    """The subscription currency as a wire code; unparseable codes read as USD (api.md §5.5)."""
    try:
        return Currency.parse(code).value
    except UnknownCurrency:
        return Currency.USD.value


def line_item_json(item: LineItem, currency: str, price_currency: str | None = None) -> JsonObject:
    """ApiSubscriptionLineItem: the setup fee in the subscription's `currency`, the price in
    `price_currency` where the amount is in another (a custom VM's, in its pricing's)."""
    return {
        "id": item.id,
        "subscription_id": item.subscription_id,
        "name": item.name,
        "description": item.description,
        "price": {"currency": price_currency or currency, "amount": item.amount},
        "setup_fee": {"currency": currency, "amount": item.setup_amount},
        "configuration": item.configuration,
    }


def subscription_json(view: SubscriptionView) -> JsonObject:
    """ApiSubscription with its line items, amounts labelled in the subscription's currency
    but each item's price in the currency its amount is in (`SubscriptionView.currencies`)."""
    sub = view.subscription
    currency = _label(sub.currency)
    shown = view.currencies
    return {
        "id": sub.id,
        "name": sub.name,
        "description": sub.description,
        "created": format_time(sub.created),
        "expires": format_optional_time(sub.expires),
        "is_active": sub.is_active,
        "auto_renewal_enabled": sub.auto_renewal_enabled,
        "line_items": [
            line_item_json(i, currency, _label(shown[i.id]) if i.id in shown else None)
            for i in view.line_items
        ],
    }


def subscription_payment_json(payment: SubscriptionPayment) -> JsonObject:
    """ApiSubscriptionPayment: PascalCase `payment_type`, `paid_at` omitted unless paid."""
    currency = _label(payment.currency)
    out: JsonObject = {
        "id": payment.id.hex(),
        "subscription_id": payment.subscription_id,
        "created": format_time(payment.created),
        "expires": format_time(payment.expires),
        "amount": {"currency": currency, "amount": payment.amount},
        "payment_method": payment.payment_method.api_name,
        "payment_type": payment.payment_type.name.capitalize(),
        "is_paid": payment.is_paid,
    }
    if payment.is_paid and payment.paid_at is not None:
        out["paid_at"] = format_time(payment.paid_at)
    out["tax"] = {"currency": currency, "amount": payment.tax}
    out["processing_fee"] = {"currency": currency, "amount": payment.processing_fee}
    return out


def ip_range_json(view: RangeView) -> JsonObject:
    """ApiIpRangeSubscription: a range given to a subscription and the space it is from."""
    r = view.record
    return {
        "id": r.id,
        "cidr": r.cidr,
        "is_active": r.is_active,
        "started_at": format_time(r.started_at or r.created),
        "ended_at": format_optional_time(r.ended_at),
        "parent_cidr": view.parent_cidr,
    }


# --- OpenAPI schemas ------------------------------------------------------------------------

_NULLABLE_TEXT = nullable(STRING)
ACCOUNT_SCHEMA = obj(
    {
        "contact_nip17": {"type": "boolean"},
        "contact_email": {"type": "boolean"},
        **{wire: _NULLABLE_TEXT for wire in ACCOUNT_TEXT_FIELDS},
    },
    {"email": STRING, "email_verified": {"type": "boolean"}},
)
#: PATCH limits: the `users` column widths (longer values are a 400, never truncated).
_PATCH_LIMITS = {
    **FIELD_LIMITS,
    "country_code": 3,
    "nwc_connection_string": NWC_LIMIT,
}


def _bounded(limit: int, description: str = "one line, no control characters") -> Schema:
    return {"type": ["string", "null"], "maxLength": limit, "description": description}


ACCOUNT_PATCH_SCHEMA = obj(
    {"contact_nip17": {"type": "boolean"}, "contact_email": {"type": "boolean"}},
    {
        "email": _bounded(EMAIL_LIMIT, "an address; null is refused once one is set"),
        "email_verified": {"type": "boolean", "description": "ignored"},
        **{wire: _bounded(_PATCH_LIMITS[wire]) for wire in ACCOUNT_TEXT_FIELDS},
        "country_code": _bounded(
            3, 'ISO 3166-1 alpha-3 (alpha-2 accepted); unknown codes are a 400, "" clears'
        ),
    },
)
SSH_KEY_SCHEMA = obj({"id": U64, "name": STRING, "created": DATETIME})
NEW_SSH_KEY_SCHEMA = obj(
    {
        "name": {
            "type": "string",
            "maxLength": SSH_NAME_LIMIT,
            "description": '"" takes the key\'s comment',
        },
        "key_data": {
            "type": "string",
            "maxLength": KEY_DATA_LIMIT,
            "description": "one OpenSSH public key line: `type base64 [comment]`, the comment "
            f"at most {COMMENT_LIMIT} characters; stored re-encoded",
        },
    }
)
LINE_ITEM_SCHEMA = obj(
    {
        "id": U64,
        "subscription_id": U64,
        "name": STRING,
        "description": _NULLABLE_TEXT,
        "price": PRICE_SCHEMA,
        "setup_fee": PRICE_SCHEMA,
        "configuration": {},
    }
)
SUBSCRIPTION_SCHEMA = obj(
    {
        "id": U64,
        "name": STRING,
        "description": _NULLABLE_TEXT,
        "created": DATETIME,
        "expires": nullable(DATETIME),
        "is_active": {"type": "boolean"},
        "auto_renewal_enabled": {"type": "boolean"},
        "line_items": {"type": "array", "items": LINE_ITEM_SCHEMA},
    }
)
IP_RANGE_SCHEMA = obj(
    {
        "id": U64,
        "cidr": STRING,
        "is_active": {"type": "boolean"},
        "started_at": DATETIME,
        "ended_at": nullable(DATETIME),
        "parent_cidr": _NULLABLE_TEXT,
    }
)
SUBSCRIPTION_PAYMENT_SCHEMA = obj(
    {
        "id": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "subscription_id": U64,
        "created": DATETIME,
        "expires": DATETIME,
        "amount": PRICE_SCHEMA,
        "payment_method": {"type": "string", "enum": PaymentMethod.wire_names()},
        "payment_type": {"type": "string", "enum": ["Purchase", "Renewal", "Upgrade"]},
        "is_paid": {"type": "boolean"},
        "tax": PRICE_SCHEMA,
        "processing_fee": PRICE_SCHEMA,
    },
    {"paid_at": DATETIME},
)
_LINE_ITEM_REQUEST = {
    "oneOf": [
        obj({"type": {"const": "ip_range"}, "ip_space_pricing_id": ID_SCHEMA}),
        obj(
            {
                "type": {"const": "asn_sponsoring"},
                "asn": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
            }
        ),
        obj(
            {
                "type": {"const": "dns_hosting"},
                "domain": {"type": "string", "maxLength": HOST_NAME_MAX},
            }
        ),
    ]
}
NEW_SUBSCRIPTION_SCHEMA = obj(
    {
        "line_items": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_LINE_ITEMS,
            "items": _LINE_ITEM_REQUEST,
        }
    },
    {
        "name": _bounded(SUBSCRIPTION_NAME_LIMIT),
        "description": _bounded(DESCRIPTION_LIMIT, "text; line breaks allowed"),
        "currency": nullable(CURRENCY),
        "auto_renewal_enabled": nullable({"type": "boolean"}),
    },
)
