"""Typed reads of JSON bodies, path ids and query values; bad input is a 400 (D19)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from aiohttp import web

from adapters.http.auth import Handler, authenticated, requires_auth
from adapters.http.bounds import INT_MAX, check_int
from adapters.http.bounds import path_id as path_id
from adapters.http.openapi import QueryParam, RouteTable
from domain.enums import PaymentMethod
from domain.errors import InvalidInput
from domain.model import User
from domain.patch import UNSET, Unset
from domain.text_rules import check_line

NUMERIC_ID = r"{id:\d+}"
#: a path segment that is not all digits: the id of a request that no `\d+` route matches.
_NOT_NUMERIC_ID = r"{id:(?![0-9]+(?:/|$))[^/]+}"
E = TypeVar("E", bound=Enum)
Body = Mapping[str, Any]


def json_object(value: Any) -> Body:
    """The body as a JSON object; arrays, strings … are refused."""
    if not isinstance(value, dict):
        raise InvalidInput("The request body must be a JSON object")
    return value


async def _bad_id(request: web.Request) -> web.StreamResponse:
    raise InvalidInput(f"Invalid id: {request.match_info['id']}")


async def _bad_id_for_user(request: web.Request, user: User) -> web.StreamResponse:
    return await _bad_id(request)


_bad_id_authenticated = authenticated(_bad_id_for_user)


def add_id_route(table: RouteTable, method: str, path: str, handler: Handler, **kw: Any) -> None:
    """Add a route whose path has `{id:\\d+}`, and a twin answering a non-numeric id with 400.

    The reference's u64 path extractor refuses `/…/abc` with a 400 (api.md §1, §2.4); the
    `\\d+` route alone would leave it to the router's 404. The twin is added first and
    authenticates like the route (auth before the id, as the reference's extractors run), so
    the OpenAPI document keeps the real route's operation (integer id) for the shared path.
    """
    if NUMERIC_ID not in path:
        raise ValueError(f"{path} has no {NUMERIC_ID}")
    twin = _bad_id_authenticated if requires_auth(handler) else _bad_id
    table.add(method, path.replace(NUMERIC_ID, _NOT_NUMERIC_ID), twin, **kw)
    table.add(method, path, handler, **kw)


def _missing(name: str) -> InvalidInput:
    return InvalidInput(f"missing field `{name}`")


def _field(body: Body, name: str, required: bool) -> Any:
    """The field's value; None when absent or null, which is a 400 when `required`."""
    value = body.get(name)
    if value is None and required:
        raise _missing(name)
    return value


def integer(
    body: Body, name: str, *, minimum: int = 0, maximum: int = INT_MAX, required: bool = True
) -> int | None:
    """An integer field in minimum..maximum (`check_int`); null counts as absent."""
    value = _field(body, name, required)
    return None if value is None else check_int(value, name, minimum=minimum, maximum=maximum)


def required_integer(body: Body, name: str, *, minimum: int = 0, maximum: int = INT_MAX) -> int:
    value = integer(body, name, minimum=minimum, maximum=maximum)
    assert value is not None
    return value


def boolean(body: Body, name: str, *, required: bool = True) -> bool | None:
    value = _field(body, name, required)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(f"`{name}` must be true or false")
    return value


def required_boolean(body: Body, name: str) -> bool:
    value = boolean(body, name)
    assert value is not None
    return value


def text(body: Body, name: str, *, required: bool = True, limit: int | None = None) -> str | None:
    """A string field (at most `limit` characters when given); null counts as absent."""
    value = _field(body, name, required)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"`{name}` must be a string")
    if limit is not None and len(value) > limit:
        raise InvalidInput(f"`{name}` is longer than {limit} characters")
    return value


def required_text(body: Body, name: str, *, limit: int | None = None) -> str:
    value = text(body, name, limit=limit)
    assert value is not None
    return value


IDEMPOTENCY_HEADER = "Idempotency-Key"
#: `idempotency_key.key` is VARCHAR(255).
IDEMPOTENCY_KEY_LIMIT = 255
IDEMPOTENCY_PARAM = QueryParam(
    IDEMPOTENCY_HEADER,
    {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_LIMIT},
    description="replays the first answer for the same key and request (D11)",
    location="header",
)


def idempotency_key(request: web.Request) -> str | None:
    """The `Idempotency-Key` header (D11): one line of 1..255 characters when sent, else 400."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not key:
        raise InvalidInput("Idempotency-Key must not be empty")
    return check_line(key, IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY_LIMIT)


def patch_text(body: Body, name: str) -> str | Unset | None:
    """Nullable-patch string (api.md §3): absent → UNSET, null → None, else the string."""
    if name not in body:
        return UNSET
    value = body[name]
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"`{name}` must be a string or null")
    return value


def wire_name(member: Enum) -> str:
    """The lower-case wire spelling of an enum member: `REDHAT_ENTERPRISE` → `redhatenterprise`."""
    return member.name.lower().replace("_", "")


def enum_field(body: Body, name: str, enum: type[E]) -> E:
    """A required enum field in its exact lower-case wire spelling (`ssd`, `pcie` …)."""
    value = required_text(body, name)
    for member in enum:
        if wire_name(member) == value:
            return member
    choices = ", ".join(wire_name(m) for m in enum)
    raise InvalidInput(f"`{name}` must be one of {choices}")


def payment_method(query: Mapping[str, str]) -> PaymentMethod:
    """`?method=`: default lightning, and any unknown value is Lightning too (api.md §3)."""
    raw = query.get("method")
    if raw is None:
        return PaymentMethod.LIGHTNING
    try:
        return PaymentMethod.parse(raw)
    except InvalidInput:
        return PaymentMethod.LIGHTNING
