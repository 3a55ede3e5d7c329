"""OpenAPI schemas of the admin catalogue objects, matching `views_catalogue` field by field."""

from __future__ import annotations

from adapters.http.admin.fields import INTEGER_CAPS
from adapters.http.openapi import Schema
from adapters.http.views_schema import (
    CPU_ARCH,
    CPU_FEATURES,
    CPU_MFG,
    DATETIME,
    DISK_INTERFACE,
    DISK_TYPE,
    STRING,
    U64,
    nullable,
    obj,
)
from app.admin.companies import ADDRESS_FIELDS
from app.admin.custom_pricing import COST_FIELDS

BOOL: Schema = {"type": "boolean"}
NUMBER: Schema = {"type": "number"}
UINT: Schema = U64
NULL_STRING = nullable(STRING)
NULL_U64 = nullable(U64)
INTERVAL: Schema = {"type": "string", "enum": ["day", "month", "year"]}
CPU_FIELDS: dict[str, Schema] = {
    "cpu_mfg": CPU_MFG,
    "cpu_arch": CPU_ARCH,
    "cpu_features": CPU_FEATURES,
}
_CAPS = {
    **{n: U64 for n in INTEGER_CAPS},
    "cpu_limit": NUMBER,
}

COMPANY = obj(
    {
        "id": U64,
        "created": DATETIME,
        "name": STRING,
        **{n: NULL_STRING for n in ADDRESS_FIELDS},
        "base_currency": STRING,
        "region_count": U64,
    }
)
REGION = obj(
    {
        "id": U64,
        "name": STRING,
        "enabled": BOOL,
        "company_id": U64,
        "host_count": U64,
        "total_vms": U64,
        "total_cpu_cores": U64,
        "total_memory_bytes": U64,
        "total_ip_assignments": U64,
    }
)
REGION_STATS = obj({"total_hosts": U64, "total_vms": U64})
DELETED = obj({"success": BOOL, "message": STRING})
DISK = obj(
    {
        "id": U64,
        "name": STRING,
        "size": U64,
        "kind": DISK_TYPE,
        "interface": DISK_INTERFACE,
        "enabled": BOOL,
    }
)
HOST = obj(
    {
        "id": U64,
        "name": STRING,
        "kind": {"type": "string", "enum": ["proxmox", "libvirt", "mock"]},
        "region": obj({"id": U64, "name": STRING, "enabled": BOOL}),
        "ip": STRING,
        "cpu": U64,
        "memory": U64,
        "enabled": BOOL,
        "load_cpu": NUMBER,
        "load_memory": NUMBER,
        "load_disk": NUMBER,
        "vlan_id": NULL_U64,
        "mtu": NULL_U64,
        "disks": {"type": "array", "items": DISK},
        "calculated_load": obj(
            {
                "overall_load": NUMBER,
                "cpu_load": NUMBER,
                "memory_load": NUMBER,
                "disk_load": NUMBER,
                "available_cpu": U64,
                "available_memory": U64,
                "active_vms": U64,
            }
        ),
        "ssh_user": NULL_STRING,
        "ssh_key_configured": BOOL,
    },
    CPU_FIELDS,
)
COST_PLAN = obj(
    {
        "id": U64,
        "name": STRING,
        "created": DATETIME,
        "amount": U64,
        "currency": STRING,
        "interval_amount": U64,
        "interval_type": INTERVAL,
        "template_count": U64,
    }
)
#: the leading fields of a template or a custom pricing (`views_catalogue._offer_head`)
_OFFER_HEAD: Schema = {
    "id": U64,
    "name": STRING,
    "enabled": BOOL,
    "created": DATETIME,
    "expires": nullable(DATETIME),
}
TEMPLATE = obj(
    {
        **_OFFER_HEAD,
        "cpu": U64,
        "memory": U64,
        "disk_size": U64,
        "disk_type": DISK_TYPE,
        "disk_interface": DISK_INTERFACE,
        "cost_plan_id": U64,
        "region_id": U64,
        "region_name": NULL_STRING,
        "cost_plan_name": NULL_STRING,
        "active_vm_count": U64,
    },
    {**CPU_FIELDS, **_CAPS},
)
PRICING_DISK = obj(
    {
        "id": U64,
        "kind": DISK_TYPE,
        "interface": DISK_INTERFACE,
        "cost": U64,
        "max_disk_size": U64,
        "min_disk_size": U64,
    }
)
PRICING = obj(
    {
        **_OFFER_HEAD,
        "region_id": U64,
        "region_name": NULL_STRING,
        "currency": STRING,
        **dict.fromkeys(COST_FIELDS, U64),
        "disk_pricing": {"type": "array", "items": PRICING_DISK},
        "template_count": U64,
    },
    {**CPU_FIELDS, **_CAPS},
)
IMAGE = obj(
    {
        "id": U64,
        "distribution": STRING,
        "flavour": STRING,
        "version": STRING,
        "enabled": BOOL,
        "release_date": DATETIME,
        "url": STRING,
        "default_username": NULL_STRING,
        "active_vm_count": U64,
        "sha2": NULL_STRING,
        "sha2_url": NULL_STRING,
    }
)
SPACE = obj(
    {
        "id": U64,
        "company_id": U64,
        "cidr": STRING,
        "min_prefix_size": U64,
        "max_prefix_size": U64,
        "registry": obj(
            {
                "value": U64,
                "name": {"type": "string", "enum": ["ARIN", "RIPE", "APNIC", "LACNIC", "AFRINIC"]},
            }
        ),
        "external_id": NULL_STRING,
        "is_available": BOOL,
        "is_reserved": BOOL,
        "metadata": {},
        "pricing_count": U64,
    }
)
SPACE_PRICING = obj(
    {
        "id": U64,
        "available_ip_space_id": U64,
        "prefix_size": U64,
        "price_per_month": U64,
        "currency": STRING,
        "setup_fee": U64,
        "cidr": NULL_STRING,
    }
)
SOLD_RANGE = obj(
    {
        "id": U64,
        "subscription_line_item_id": U64,
        "available_ip_space_id": U64,
        "cidr": STRING,
        "is_active": BOOL,
        "started_at": DATETIME,
        "ended_at": nullable(DATETIME),
        "metadata": {},
        "subscription_id": NULL_U64,
        "user_id": NULL_U64,
        "parent_cidr": NULL_STRING,
    }
)
MESSAGE: Schema = STRING
NULL: Schema = {"type": "null"}


def body(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """A request body schema (the same builder as responses)."""
    return obj(required, optional)
