"""Request parsing shared by the VM and payment routes: ids, methods, intervals, body fields."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from aiohttp import web

from adapters.http.bounds import INT_MAX, check_int, parse_uint
from adapters.http.bounds import path_id as path_id
from adapters.http.envelope import read_json
from domain.enums import DiskInterface, DiskType, PaymentMethod
from domain.errors import InvalidInput
from domain.text_rules import is_single_line

T = TypeVar("T")
E = TypeVar("E", bound=Enum)

_PAYMENT_ID_BYTES = 32


def payment_id(text: str) -> bytes:
    """A hex payment id (either case); not hex is a 400 "Invalid payment id" (api.md §6.6)."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise InvalidInput("Invalid payment id") from None
    if not raw:
        raise InvalidInput("Invalid payment id")
    return raw


def is_payment_id_length(raw: bytes) -> bool:
    """Stored payment ids are 32 bytes; anything else cannot exist (404, not 400)."""
    return len(raw) == _PAYMENT_ID_BYTES


def query_method(query: Mapping[str, str]) -> PaymentMethod:
    """`method=`: the four wire names; absent, `nwc` or anything else is Lightning (§3).

    `method=nwc` prices a Lightning invoice; the renew route then pays it from the user's
    wallet when one is connected (`routes_payments`), else it stays a plain invoice.
    """
    return method_from(query.get("method"))


def method_from(value: object) -> PaymentMethod:
    if isinstance(value, str):
        for member in PaymentMethod:
            if member.api_name == value:
                return member
    return PaymentMethod.LIGHTNING


def intervals_from(value: object) -> int:
    """`intervals`: absent is 1; a whole number 1..120 (D6); 0, 121, "abc", -1 are a 400."""
    if value is None:
        return 1
    if isinstance(value, str):
        return parse_uint(value, "intervals", minimum=1, maximum=120)
    return check_int(value, "intervals", minimum=1, maximum=120)


def as_int(value: object, name: str, *, minimum: int = 0, maximum: int = INT_MAX) -> int:
    """A JSON whole number in minimum..maximum (an integral float such as 2.0 too, §3)."""
    return check_int(value, name, minimum=minimum, maximum=maximum)


async def json_object(request: web.Request) -> dict[str, Any]:
    """The JSON body, which must be an object (415 / 400 from `read_json` otherwise)."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object")
    return body


async def optional_json_object(request: web.Request) -> dict[str, Any]:
    """An optional JSON object body: none (or only whitespace) is `{}`."""
    raw = await request.read()
    if not raw.strip():
        return {}
    return await json_object(request)


def required_int(
    body: Mapping[str, Any], name: str, *, minimum: int = 0, maximum: int = INT_MAX
) -> int:
    if body.get(name) is None:
        raise InvalidInput(f"missing field `{name}`")
    return as_int(body[name], name, minimum=minimum, maximum=maximum)


def optional_int(
    body: Mapping[str, Any], name: str, *, minimum: int = 0, maximum: int = INT_MAX
) -> int | None:
    value = body.get(name)
    return None if value is None else as_int(value, name, minimum=minimum, maximum=maximum)


def _optional(body: Mapping[str, Any], name: str, kind: type[T], what: str) -> T | None:
    """The field when it is a `kind`; None when absent or null; else 400 `{name} must be …`."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, kind):
        raise InvalidInput(f"{name} must be {what}")
    return value


def optional_str(body: Mapping[str, Any], name: str) -> str | None:
    return _optional(body, name, str, "a string")


REF_CODE_LIMIT = 20  # vm.ref_code is VARCHAR(20)


def ref_code(body: Mapping[str, Any]) -> str | None:
    """`ref_code`: absent, null or `""` is none; else up to 20 characters without spaces or
    control characters (400 otherwise)."""
    value = optional_str(body, "ref_code")
    if not value:
        return None
    if len(value) > REF_CODE_LIMIT or not is_single_line(value) or any(c.isspace() for c in value):
        raise InvalidInput(f"ref_code must be up to {REF_CODE_LIMIT} characters without spaces")
    return value


def optional_bool(body: Mapping[str, Any], name: str) -> bool | None:
    return _optional(body, name, bool, "true or false")


def _member_named(enum: type[E], value: object, field: str) -> E:
    """The member whose name is `value`, any case; else 400 `{field} must be one of: …`."""
    if isinstance(value, str):
        for member in enum:
            if member.name.lower() == value.lower():
                return member
    names = ", ".join(member.name.lower() for member in enum)
    raise InvalidInput(f"{field} must be one of: {names}")


def disk_type(value: object) -> DiskType:
    return _member_named(DiskType, value, "disk_type")


def disk_interface(value: object) -> DiskInterface:
    return _member_named(DiskInterface, value, "disk_interface")
