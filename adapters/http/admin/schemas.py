"""OpenAPI schemas of the admin API's objects (api.md §9), matching `views.py` field by field."""

from __future__ import annotations

from adapters.http.admin.schemas_catalogue import BOOL, CPU_FIELDS, NULL_STRING, NUMBER
from adapters.http.openapi import Schema
from adapters.http.views_schema import (
    DATETIME,
    DISK_INTERFACE,
    DISK_TYPE,
    STRING,
    U64,
    nullable,
    obj,
)
from adapters.http.vm_schemas import RUNNING_STATE
from app.admin.users import TEXT_FIELDS
from domain.enums import PaymentMethod

ANY: Schema = {}
NULL_TIME = nullable(DATETIME)
METHOD: Schema = {"type": "string", "enum": PaymentMethod.wire_names()}

USER = obj(
    {
        "id": U64,
        "pubkey": STRING,
        "created": DATETIME,
        "email": NULL_STRING,
        "email_verified": BOOL,
        "contact_nip17": BOOL,
        "contact_email": BOOL,
        "billing_vat_validated": BOOL,
        **{n: NULL_STRING for n in ("country_code", *TEXT_FIELDS)},
        "vm_count": U64,
        "last_login": {"type": "null"},
        "is_admin": BOOL,
        "has_nwc": BOOL,
    }
)
ROLE = obj(
    {
        "id": U64,
        "name": STRING,
        "description": NULL_STRING,
        "is_system_role": BOOL,
        "permissions": {"type": "array", "items": STRING},
        "user_count": U64,
        "created_at": DATETIME,
        "updated_at": DATETIME,
    }
)
LINE_ITEM = obj(
    {
        "id": U64,
        "subscription_id": U64,
        "name": STRING,
        "description": NULL_STRING,
        "amount": U64,
        "setup_amount": U64,
        "configuration": ANY,
    }
)
SUBSCRIPTION = obj(
    {
        "id": U64,
        "user_id": U64,
        "name": STRING,
        "description": NULL_STRING,
        "created": DATETIME,
        "expires": NULL_TIME,
        "is_active": BOOL,
        "is_setup": BOOL,
        "currency": STRING,
        "interval_amount": U64,
        "interval_type": {"type": "string", "enum": ["day", "month", "year"]},
        "setup_fee": U64,
        "auto_renewal_enabled": BOOL,
        "external_id": NULL_STRING,
        "line_items": {"type": "array", "items": LINE_ITEM},
        "payment_count": U64,
    }
)
_PAYMENT = {
    "id": STRING,
    "created": DATETIME,
    "expires": DATETIME,
    "amount": U64,
    "currency": STRING,
    "company_base_currency": STRING,
    "payment_method": METHOD,
    "external_id": NULL_STRING,
    "is_paid": BOOL,
    "rate": NUMBER,
    "tax": U64,
    "processing_fee": U64,
}
VM_PAYMENT = obj({"vm_id": U64, **_PAYMENT}, {"paid_at": DATETIME})
SUBSCRIPTION_PAYMENT = obj(
    {
        "subscription_id": U64,
        "user_id": U64,
        **_PAYMENT,
        "payment_type": {"type": "string", "enum": ["Purchase", "Renewal", "Upgrade"]},
    },
    {"paid_at": DATETIME, "time_value": U64, "metadata": ANY},
)
HISTORY = obj(
    {
        "id": U64,
        "vm_id": U64,
        "action_type": STRING,
        "timestamp": DATETIME,
        "initiated_by_user": nullable(U64),
        "initiated_by_user_pubkey": NULL_STRING,
        "initiated_by_user_email": NULL_STRING,
        "description": NULL_STRING,
    }
)
VM = obj(
    {
        "id": U64,
        "created": NULL_TIME,
        "expires": NULL_TIME,
        "mac_address": STRING,
        "image_id": U64,
        "image_name": STRING,
        "template_id": U64,
        "template_name": STRING,
        "custom_template_id": nullable(U64),
        "is_standard_template": BOOL,
        "ssh_key_id": U64,
        "ssh_key_name": STRING,
        "ip_addresses": {"type": "array", "items": obj({"id": U64, "ip": STRING, "range_id": U64})},
        "running_state": nullable(RUNNING_STATE),
        "auto_renewal_enabled": BOOL,
        "cpu": U64,
        "memory": U64,
        "disk_size": U64,
        "disk_type": DISK_TYPE,
        "disk_interface": DISK_INTERFACE,
        "host_id": U64,
        "user_id": U64,
        "user_pubkey": STRING,
        "user_email": NULL_STRING,
        "host_name": STRING,
        "region_id": U64,
        "region_name": STRING,
        "deleted": BOOL,
        "disabled": BOOL,
        "ref_code": NULL_STRING,
    },
    {**CPU_FIELDS, "subscription": SUBSCRIPTION},
)
PAYMENT_METHOD = obj(
    {
        "id": U64,
        "company_id": U64,
        "payment_method": METHOD,
        "name": STRING,
        "enabled": BOOL,
        "provider_type": STRING,
        "config": nullable(
            {
                "type": "object",
                "description": "SanitizedProviderConfig: secrets "
                "appear only as `has_<field>` booleans",
            }
        ),
        "processing_fee_rate": nullable(NUMBER),
        "processing_fee_base": nullable(U64),
        "processing_fee_currency": NULL_STRING,
        "supported_currencies": {"type": "array", "items": STRING},
        "created": DATETIME,
        "modified": DATETIME,
    }
)
