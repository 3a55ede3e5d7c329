"""OpenAPI schemas of the user API's catalogue objects and the building blocks they share."""

from __future__ import annotations

from adapters.http.bounds import ID_SCHEMA, UINT_SCHEMA
from adapters.http.openapi import Schema
from domain.enums import LNURL, NWC, PaymentMethod
from domain.money import Currency

U64: Schema = {"type": "integer", "minimum": 0}
STRING: Schema = {"type": "string"}
DATETIME: Schema = {"type": "string", "format": "date-time"}
CURRENCY: Schema = {"type": "string", "enum": [c.value for c in Currency]}
DISK_TYPE: Schema = {"type": "string", "enum": ["hdd", "ssd"]}
DISK_INTERFACE: Schema = {"type": "string", "enum": ["sata", "scsi", "pcie"]}
CPU_MFG: Schema = {"type": "string", "enum": ["intel", "amd", "apple", "nvidia", "arm"]}
CPU_ARCH: Schema = {"type": "string", "enum": ["x86_64", "arm64"]}
CPU_FEATURES: Schema = {"type": "array", "items": STRING}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """An object schema: every key of `required` is required, `optional` ones may be omitted."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
    }


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


PRICE_SCHEMA = obj({"currency": CURRENCY, "amount": U64})
REGION_SCHEMA = obj({"id": U64, "name": STRING})
COST_PLAN_SCHEMA = obj(
    {
        "id": U64,
        "name": STRING,
        "currency": CURRENCY,
        "amount": U64,
        "other_price": {"type": "array", "items": PRICE_SCHEMA},
        "interval_amount": U64,
        "interval_type": {"type": "string", "enum": ["day", "month", "year"]},
    }
)
_CPU_OPTIONAL = {"cpu_features": CPU_FEATURES, "cpu_mfg": CPU_MFG, "cpu_arch": CPU_ARCH}
TEMPLATE_SCHEMA = obj(
    {
        "id": U64,
        "name": STRING,
        "created": DATETIME,
        "cpu": U64,
        "memory": U64,
        "disk_size": U64,
        "disk_type": DISK_TYPE,
        "disk_interface": DISK_INTERFACE,
        "cost_plan": COST_PLAN_SCHEMA,
        "region": REGION_SCHEMA,
    },
    {"expires": DATETIME, **_CPU_OPTIONAL},
)
CUSTOM_TEMPLATE_SCHEMA = obj(
    {
        "id": U64,
        "name": STRING,
        "region": REGION_SCHEMA,
        "max_cpu": U64,
        "min_cpu": U64,
        "min_memory": U64,
        "max_memory": U64,
        "disks": {
            "type": "array",
            "items": obj(
                {
                    "min_disk": U64,
                    "max_disk": U64,
                    "disk_type": DISK_TYPE,
                    "disk_interface": DISK_INTERFACE,
                }
            ),
        },
    },
    _CPU_OPTIONAL,
)
TEMPLATES_RESPONSE_SCHEMA = obj(
    {
        "templates": {"type": "array", "items": TEMPLATE_SCHEMA},
        "custom_template": {"type": "array", "items": CUSTOM_TEMPLATE_SCHEMA},
    }
)
#: `OsDistribution` members as the API spells them (`views_input.wire_name`)
DISTRIBUTIONS = [
    "ubuntu",
    "debian",
    "centos",
    "fedora",
    "freebsd",
    "opensuse",
    "archlinux",
    "redhatenterprise",
]
IMAGE_SCHEMA = obj(
    {
        "id": U64,
        "distribution": {
            "type": "string",
            "enum": DISTRIBUTIONS,
        },
        "flavour": STRING,
        "version": STRING,
        "release_date": DATETIME,
        "default_username": nullable(STRING),
    }
)
PAYMENT_INFO_SCHEMA = obj(
    {
        "name": {
            "type": "string",
            "enum": PaymentMethod.wire_names(NWC, LNURL),
        },
        "currencies": {"type": "array", "items": CURRENCY},
    },
    {
        "metadata": {"type": "object"},
        "processing_fee_rate": {"type": "number"},
        "processing_fee_base": U64,
        "processing_fee_currency": STRING,
    },
)
IP_SPACE_SCHEMA = obj(
    {
        "id": U64,
        "min_prefix_size": U64,
        "max_prefix_size": U64,
        "registry": {"type": "string", "enum": ["arin", "ripe", "apnic", "lacnic", "afrinic"]},
        "ip_version": {"type": "string", "enum": ["ipv4", "ipv6"]},
        "pricing": {
            "type": "array",
            "items": obj(
                {
                    "id": U64,
                    "prefix_size": U64,
                    "price": PRICE_SCHEMA,
                    "setup_fee": PRICE_SCHEMA,
                    "other_price": {"type": "array", "items": PRICE_SCHEMA},
                    "other_setup_fee": {"type": "array", "items": PRICE_SCHEMA},
                }
            ),
        },
    }
)
CUSTOM_VM_REQUEST_SCHEMA = obj(
    {
        "pricing_id": ID_SCHEMA,
        "cpu": {"type": "integer", "minimum": 0, "maximum": 65535},
        "memory": UINT_SCHEMA,
        "disk": UINT_SCHEMA,
        "disk_type": DISK_TYPE,
        "disk_interface": DISK_INTERFACE,
    },
    {"cpu_mfg": STRING, "cpu_arch": STRING, "cpu_feature": CPU_FEATURES},
)
