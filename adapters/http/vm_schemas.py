"""OpenAPI schemas of the VM routes' bodies and answers (api.md §5.1, §5.2, §6.4–6.5)."""

from __future__ import annotations

from typing import Any

from adapters.http.bounds import ID_SCHEMA, UINT_SCHEMA
from adapters.http.views_schema import DISTRIBUTIONS

Schema = dict[str, Any]
ID: Schema = ID_SCHEMA
#: a request's size/count: what storage can bind (responses use the looser U64)
UINT: Schema = UINT_SCHEMA

U64: Schema = {"type": "integer", "minimum": 0}
DT: Schema = {"type": "string", "format": "date-time"}
STR: Schema = {"type": "string"}
NULL_STR: Schema = {"type": ["string", "null"]}


def obj(props: Schema, required: list[str] | None = None) -> Schema:
    """An object schema; every property is required unless `required` says otherwise."""
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
    }


REGION = obj({"id": U64, "name": STR})
IMAGE = obj(
    {
        "id": U64,
        "distribution": {"enum": DISTRIBUTIONS},
        "flavour": STR,
        "version": STR,
        "release_date": DT,
        "default_username": NULL_STR,
    }
)
COST_PLAN = obj(
    {
        "id": U64,
        "name": STR,
        "currency": STR,
        "amount": U64,
        "other_price": {"type": "array", "items": obj({"currency": STR, "amount": U64})},
        "interval_amount": U64,
        "interval_type": {"enum": ["day", "month", "year"]},
    }
)
_TEMPLATE_PROPS: Schema = {
    "id": U64,
    "name": STR,
    "created": DT,
    "expires": DT,
    "cpu": U64,
    "memory": U64,
    "disk_size": U64,
    "disk_type": {"enum": ["hdd", "ssd"]},
    "disk_interface": {"enum": ["sata", "scsi", "pcie"]},
    "cost_plan": COST_PLAN,
    "region": REGION,
    "cpu_features": {"type": "array", "items": STR},
    "cpu_mfg": STR,
    "cpu_arch": STR,
}
TEMPLATE = obj(
    _TEMPLATE_PROPS,
    [k for k in _TEMPLATE_PROPS if k not in ("expires", "cpu_features", "cpu_mfg", "cpu_arch")],
)
SSH_KEY = obj({"id": U64, "name": STR, "created": DT})
IP_ASSIGNMENT = obj(
    {
        "id": U64,
        "ip": {**STR, "description": "address/prefix"},
        "gateway": STR,
        "forward_dns": NULL_STR,
        "reverse_dns": NULL_STR,
    }
)
RUNNING_STATE = obj(
    {
        "timestamp": {**U64, "description": "Unix seconds; 0 when unknown"},
        "state": {"enum": ["unknown", "running", "stopped", "creating"]},
        "cpu_usage": {"type": "number"},
        "mem_usage": {"type": "number"},
        "uptime": U64,
        "net_in": U64,
        "net_out": U64,
        "disk_write": U64,
        "disk_read": U64,
    }
)
VM_STATUS = obj(
    {
        "id": U64,
        "created": DT,
        "expires": {"type": ["string", "null"], "format": "date-time"},
        "mac_address": STR,
        "image": IMAGE,
        "template": TEMPLATE,
        "ssh_key": SSH_KEY,
        "ip_assignments": {"type": "array", "items": IP_ASSIGNMENT},
        "status": RUNNING_STATE,
        "auto_renewal_enabled": {"type": "boolean"},
    }
)
VM_HISTORY = obj(
    {
        "id": U64,
        "vm_id": U64,
        "action_type": {
            "enum": [
                "created",
                "started",
                "stopped",
                "restarted",
                "deleted",
                "expired",
                "renewed",
                "reinstalled",
                "state_changed",
                "payment_received",
                "configuration_changed",
            ]
        },
        "timestamp": DT,
        "initiated_by": {"enum": ["owner", "system", "other"]},
        "previous_state": NULL_STR,
        "new_state": NULL_STR,
        "metadata": NULL_STR,
        "description": NULL_STR,
    }
)
TIME_SERIES = obj(
    {
        "timestamp": U64,
        "cpu": {"type": "number"},
        "memory": {"type": "number"},
        "memory_size": U64,
        "net_in": {"type": "number"},
        "net_out": {"type": "number"},
        "disk_write": {"type": "number"},
        "disk_read": {"type": "number"},
    }
)
U16: Schema = {"type": "integer", "minimum": 0, "maximum": 2**16 - 1}
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
REF_CODE: Schema = {
    "type": ["string", "null"],
    "maxLength": 20,
    "description": "referral code: up to 20 characters, no spaces",
}
REVERSE_DNS: Schema = {
    "type": ["string", "null"],
    "maxLength": 254,
    "pattern": rf"^(?:{_LABEL}(?:\.{_LABEL})*\.?)?$",
    "description": "PTR name for every address of the VM: an RFC 1123 host name of at most "
    '253 characters; "" or null clears it',
}
CREATE_VM = obj(
    {"template_id": ID, "image_id": ID, "ssh_key_id": ID, "ref_code": REF_CODE},
    ["template_id", "image_id", "ssh_key_id"],
)
CREATE_CUSTOM_VM = obj(
    {
        "pricing_id": ID,
        "cpu": U16,
        "memory": {**UINT, "description": "bytes"},
        "disk": {**UINT, "description": "bytes"},
        "disk_type": {"enum": ["hdd", "ssd"]},
        "disk_interface": {"enum": ["sata", "scsi", "pcie"]},
        "image_id": ID,
        "ssh_key_id": ID,
        "ref_code": REF_CODE,
    },
    [
        "pricing_id",
        "cpu",
        "memory",
        "disk",
        "disk_type",
        "disk_interface",
        "image_id",
        "ssh_key_id",
    ],
)
PATCH_VM = obj(
    {"ssh_key_id": ID, "reverse_dns": REVERSE_DNS, "auto_renewal_enabled": {"type": "boolean"}}, []
)
REINSTALL = obj({"image_id": {**ID, "description": "optional: the image to install (D21)"}}, [])
UPGRADE_REQUEST = obj(
    {
        "cpu": U16,
        "memory": {**UINT, "description": "bytes"},
        "disk": {**UINT, "description": "bytes"},
    },
    [],
)
NULL: Schema = {"type": "null"}
