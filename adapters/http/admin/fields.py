"""Bounded reads of admin create/PATCH bodies: each field typed, sized and ranged (400 if not).

A `Reader` collects the fields that were sent into `out` (a create's defaults are the use
case's); absent fields are left out, so `out` is also a PATCH. A field is `null`-able only
where the API has nullable-patch semantics: elsewhere `null` counts as absent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, TypeVar

from adapters.http.envelope import parse_time
from adapters.http.views_input import wire_name
from app.admin.catalogue_common import CURRENCIES, price_currency
from app.admin.permissions import permission_text
from domain import enums
from domain.errors import InvalidInput
from domain.limits import MAX_PRICE, MAX_SIZE
from domain.text_rules import check_line

#: the integer caps of `ResourceLimits` (all but `cpu_limit`), as the admin API names them
INTEGER_CAPS = (
    "disk_iops_read",
    "disk_iops_write",
    "disk_mbps_read",
    "disk_mbps_write",
    "network_mbps",
)

E = TypeVar("E", bound=Enum)
U64 = 2**64 - 1
U32 = 2**32 - 1
U16 = 2**16 - 1
U8 = 255
#: the CPU feature names the reference knows (api.md §3, case-sensitive)
CPU_FEATURES = frozenset(
    {
        "SSE",
        "SSE2",
        "SSE3",
        "SSSE3",
        "SSE4_1",
        "SSE4_2",
        "AVX",
        "AVX2",
        "FMA",
        "F16C",
        "AVX512F",
        "AVX512VNNI",
        "AVX512BF16",
        "AVXVNNI",
        "NEON",
        "SVE",
        "SVE2",
        "AES",
        "SHA",
        "SHA512",
        "PCLMULQDQ",
        "RNG",
        "GFNI",
        "VAES",
        "VPCLMULQDQ",
        "VMX",
        "NestedVirt",
        "AMX",
        "SME",
        "SGX",
        "SEV",
        "TDX",
        "EncodeH264",
        "EncodeHEVC",
        "EncodeAV1",
        "EncodeVP9",
        "EncodeJPEG",
        "DecodeH264",
        "DecodeHEVC",
        "DecodeAV1",
        "DecodeVP9",
        "DecodeJPEG",
        "DecodeMPEG2",
        "DecodeVC1",
        "VideoScaling",
        "VideoDeinterlace",
        "VideoCSC",
        "VideoComposition",
    }
)
Parse = Callable[[Any, str], Any]
Schema = dict[str, Any]
_CURRENCY_ECHO = 16
#: the currencies prices, subscriptions and fees may be in (by value, as the API writes them)
CURRENCY_CODES: tuple[str, ...] = CURRENCIES


def text(max_len: int, *, multiline: bool = False) -> Parse:
    """A string of at most `max_len` characters (its column's width), one line unless
    `multiline` (a text column: tab, CR and LF allowed), no other control characters."""

    def parse(value: Any, name: str) -> str:
        if not isinstance(value, str):
            raise InvalidInput(f"{name} must be a string")
        if len(value) > max_len:
            raise InvalidInput(f"{name} must be at most {max_len} characters")
        return check_line(value, name, max_len, multiline=multiline)

    return parse


def text_schema(max_len: int, *, nullable: bool = False, multiline: bool = False) -> Schema:
    """The OpenAPI schema `text(max_len)` accepts (its length and form)."""
    form = (
        "text, no control characters but tab and line breaks"
        if multiline
        else ("one line, no control characters")
    )
    return {
        "type": ["string", "null"] if nullable else "string",
        "maxLength": max_len,
        "description": form,
    }


def patch_body(properties: Schema) -> Schema:
    """A PATCH body's schema: an object whose fields are all optional."""
    return {"type": "object", "properties": properties}


def patch_of(create: Schema) -> Schema:
    """A PATCH body's schema from its create body's: every field optional, and `null` allowed
    (it leaves a field as is, or clears a nullable one)."""
    return patch_body(
        {
            name: {"anyOf": [schema, {"type": "null"}]} if schema else schema
            for name, schema in create["properties"].items()
        }
    )


def _currency(value: Any, name: str) -> str:
    """A supported currency code by value (any case, surrounding spaces ignored), upper-cased,
    by the catalogue's rule; a long string is cut first so the 400 does not echo all of it."""
    return price_currency(value[:_CURRENCY_ECHO] if isinstance(value, str) else value)


def json_value(max_len: int) -> Parse:
    """Any JSON value whose ASCII encoding is at most `max_len` characters (a TEXT column)."""

    def parse(value: Any, name: str) -> Any:
        if len(json.dumps(value)) > max_len:
            raise InvalidInput(f"{name} must be at most {max_len} bytes of JSON")
        return value

    return parse


def uint(maximum: int, minimum: int = 0) -> Parse:
    def parse(value: Any, name: str) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not (minimum <= value <= maximum)
        ):
            raise InvalidInput(f"{name} must be a whole number from {minimum} to {maximum}")
        return value

    return parse


def flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be true or false")
    return value


def decimal(minimum: Decimal, maximum: Decimal) -> Parse:
    """A JSON number kept exact from its decimal text (`0.75` is 0.75, not a binary float)."""

    def parse(value: Any, name: str) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"{name} must be a number")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise InvalidInput(f"{name} must be a finite number") from None
        if not number.is_finite() or not minimum <= number <= maximum:
            raise InvalidInput(f"{name} must be from {minimum} to {maximum}")
        return number

    return parse


def choice(names: Mapping[str, E]) -> Parse:
    def parse(value: Any, name: str) -> E:
        if isinstance(value, str) and value.lower() in names:
            return names[value.lower()]
        raise InvalidInput(f"{name} must be one of: {', '.join(names)}")

    return parse


def wire_choice(enum: type[E]) -> Parse:
    return choice({wire_name(m): m for m in enum})


def time(value: Any, name: str) -> Any:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be an RFC 3339 time")
    return parse_time(value)


def features(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > len(CPU_FEATURES):
        raise InvalidInput(f"{name} must be a list of CPU feature names")
    unknown = [v for v in value if not isinstance(v, str) or v not in CPU_FEATURES]
    if unknown:
        raise InvalidInput(f"Unknown CPU feature: {str(unknown[0])[:40]}")
    return tuple(dict.fromkeys(value))


def query_flag(query: Mapping[str, str], name: str) -> bool | None:
    """An optional `true`/`false` query filter; absent or empty is no filter."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in ("true", "false"):
        raise InvalidInput(f"{name} must be true or false")
    return raw == "true"


DISK_TYPE = wire_choice(enums.DiskType)
DISK_INTERFACE = wire_choice(enums.DiskInterface)
INTERVAL_TYPE = wire_choice(enums.IntervalType)
CPU_MFG = wire_choice(enums.CpuMfg)
CPU_ARCH = choice({m.name.lower(): m for m in enums.CpuArch})
CURRENCY: Parse = _currency
CURRENCY_SCHEMA: Schema = {"type": "string", "enum": list(CURRENCY_CODES)}
#: a role's permissions: `resource::action` names (parsing also takes any case and aliases)
PERMISSIONS_SCHEMA: Schema = {
    "type": "array",
    "items": {
        "type": "string",
        "enum": [permission_text(r, a) for r in enums.AdminResource for a in enums.AdminAction],
    },
}
FEATURES_SCHEMA: Schema = {
    "type": "array",
    "items": {"type": "string", "enum": sorted(CPU_FEATURES)},
    "maxItems": len(CPU_FEATURES),
}
TIME_SCHEMA: Schema = {"type": ["string", "null"], "format": "date-time"}
CAP = uint(U32)
#: a price, cost or fee in smallest units (see `domain.limits`)
MONEY = uint(MAX_PRICE)
MONEY_SCHEMA: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_PRICE}
#: a memory or disk size in bytes, at least 1 (`SIZE_BOUND`: a limit, 0 allowed)
SIZE = uint(MAX_SIZE, 1)
SIZE_BOUND = uint(MAX_SIZE)
SIZE_SCHEMA: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_SIZE}
#: JSON stored in a TEXT column (metadata, line-item configuration)
JSON_LIMIT = 16_384
CPU_LIMIT = decimal(Decimal("0.01"), Decimal(1024))


class Reader:
    """Reads fields of one body; `patch` makes every field optional."""

    def __init__(self, body: Mapping[str, Any], *, patch: bool) -> None:
        self.body = body
        self.patch = patch
        self.out: dict[str, Any] = {}

    def __call__(
        self,
        name: str,
        parse: Parse,
        *,
        required: bool = False,
        nullable: bool = False,
        null: Any = None,
    ) -> None:
        """`null` is what a JSON null becomes on a nullable field (None, or e.g. `()`)."""
        if name not in self.body or (self.body[name] is None and not nullable):
            if required and not self.patch:
                raise InvalidInput(f"missing field `{name}`")
            return
        value = self.body[name]
        self.out[name] = null if value is None else parse(value, name)

    def cpu(self) -> None:
        """`cpu_mfg`/`cpu_arch`/`cpu_features`, nullable: null is unknown / none."""
        self("cpu_mfg", CPU_MFG, nullable=True, null=enums.CpuMfg.UNKNOWN)
        self("cpu_arch", CPU_ARCH, nullable=True, null=enums.CpuArch.UNKNOWN)
        self("cpu_features", features, nullable=True, null=())

    def caps(self) -> None:
        """The six resource caps, nullable (null removes the cap)."""
        for name in INTEGER_CAPS:
            self(name, CAP, nullable=True)
        self("cpu_limit", CPU_LIMIT, nullable=True)
