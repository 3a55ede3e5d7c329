"""OpenAPI building blocks shared by the user-API views: primitives, objects, nullables."""

from __future__ import annotations

from adapters.http.openapi import Schema
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
