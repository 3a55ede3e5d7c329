"""OpenAPI schemas of the admin API's objects (api.md §9), matching `views.py` field by field."""

from __future__ import annotations

from adapters.http import views_schema as vs
from adapters.http.admin.schemas_catalogue import BOOL, CPU_FIELDS, NULL_STRING, NUMBER
from adapters.http.openapi import Schema
from adapters.http.vm_schemas import RUNNING_STATE
from app.admin.users import TEXT_FIELDS
from domain.enums import PaymentMethod

ANY: Schema = {}
NULL_TIME = vs.nullable(vs.DATETIME)
METHOD: Schema = {"type": "string", "enum": PaymentMethod.wire_names()}

USER = vs.obj(
    {
        "id": vs.U64,
        "pubkey": vs.STRING,
        "created": vs.DATETIME,
        "email": NULL_STRING,
        "email_verified": BOOL,
        "contact_nip17": BOOL,
        "contact_email": BOOL,
        "billing_vat_validated": BOOL,
        **{n: NULL_STRING for n in ("country_code", *TEXT_FIELDS)},
        "vm_count": vs.U64,
        "last_login": {"type": "null"},
        "is_admin": BOOL,
        "has_nwc": BOOL,
    }
)
ROLE = vs.obj(
    {
        "id": vs.U64,
        "name": vs.STRING,
        "description": NULL_STRING,
        "is_system_role": BOOL,
        "permissions": {"type": "array", "items": vs.STRING},
        "user_count": vs.U64,
        "created_at": vs.DATETIME,
        "updated_at": vs.DATETIME,
    }
)
LINE_ITEM = vs.obj(
    {
        "id": vs.U64,
        "subscription_id": vs.U64,
        "name": vs.STRING,
        "description": NULL_STRING,
        "amount": vs.U64,
        "setup_amount": vs.U64,
        "configuration": ANY,
        # the currency `amount` is in: a custom VM's pricing's, else the subscription's
        "currency": vs.STRING,
    }
)
SUBSCRIPTION = vs.obj(
    {
        "id": vs.U64,
        "user_id": vs.U64,
        "name": vs.STRING,
        "description": NULL_STRING,
        "created": vs.DATETIME,
        "expires": NULL_TIME,
        "is_active": BOOL,
        "is_setup": BOOL,
        "currency": vs.STRING,
        "interval_amount": vs.U64,
        "interval_type": {"type": "string", "enum": ["day", "month", "year"]},
        "setup_fee": vs.U64,
        "auto_renewal_enabled": BOOL,
        "external_id": NULL_STRING,
        "line_items": {"type": "array", "items": LINE_ITEM},
        "payment_count": vs.U64,
    }
)
_PAYMENT = {
    "id": vs.STRING,
    "created": vs.DATETIME,
    "expires": vs.DATETIME,
    "amount": vs.U64,
    "currency": vs.STRING,
    "company_base_currency": vs.STRING,
    "payment_method": METHOD,
    "external_id": NULL_STRING,
    "is_paid": BOOL,
    "rate": NUMBER,
    "tax": vs.U64,
    "processing_fee": vs.U64,
}
VM_PAYMENT = vs.obj({"vm_id": vs.U64, **_PAYMENT}, {"paid_at": vs.DATETIME})
SUBSCRIPTION_PAYMENT = vs.obj(
    {
        "subscription_id": vs.U64,
        "user_id": vs.U64,
        **_PAYMENT,
        "payment_type": {"type": "string", "enum": ["Purchase", "Renewal", "Upgrade"]},
    },
    {"paid_at": vs.DATETIME, "time_value": vs.U64, "metadata": ANY},
)
HISTORY = vs.obj(
    {
        "id": vs.U64,
        "vm_id": vs.U64,
        "action_type": vs.STRING,
        "timestamp": vs.DATETIME,
        "initiated_by_user": vs.nullable(vs.U64),
        "initiated_by_user_pubkey": NULL_STRING,
        "initiated_by_user_email": NULL_STRING,
        "description": NULL_STRING,
    }
)
VM = vs.obj(
    {
        "id": vs.U64,
        "created": NULL_TIME,
        "expires": NULL_TIME,
        "mac_address": vs.STRING,
        "image_id": vs.U64,
        "image_name": vs.STRING,
        "template_id": vs.U64,
        "template_name": vs.STRING,
        "custom_template_id": vs.nullable(vs.U64),
        "is_standard_template": BOOL,
        "ssh_key_id": vs.U64,
        "ssh_key_name": vs.STRING,
        "ip_addresses": {
            "type": "array",
            "items": vs.obj({"id": vs.U64, "ip": vs.STRING, "range_id": vs.U64}),
        },
        "running_state": vs.nullable(RUNNING_STATE),
        "auto_renewal_enabled": BOOL,
        "cpu": vs.U64,
        "memory": vs.U64,
        "disk_size": vs.U64,
        "disk_type": vs.DISK_TYPE,
        "disk_interface": vs.DISK_INTERFACE,
        "host_id": vs.U64,
        "user_id": vs.U64,
        "user_pubkey": vs.STRING,
        "user_email": NULL_STRING,
        "host_name": vs.STRING,
        "region_id": vs.U64,
        "region_name": vs.STRING,
        "deleted": BOOL,
        "disabled": BOOL,
        "ref_code": NULL_STRING,
    },
    {**CPU_FIELDS, "subscription": SUBSCRIPTION},
)
PAYMENT_METHOD = vs.obj(
    {
        "id": vs.U64,
        "company_id": vs.U64,
        "payment_method": METHOD,
        "name": vs.STRING,
        "enabled": BOOL,
        "provider_type": vs.STRING,
        "config": vs.nullable(
            {
                "type": "object",
                "description": "SanitizedProviderConfig: secrets "
                "appear only as `has_<field>` booleans",
            }
        ),
        "processing_fee_rate": vs.nullable(NUMBER),
        "processing_fee_base": vs.nullable(vs.U64),
        "processing_fee_currency": NULL_STRING,
        "supported_currencies": {"type": "array", "items": vs.STRING},
        "created": vs.DATETIME,
        "modified": vs.DATETIME,
    }
)
