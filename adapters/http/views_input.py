"""Typed reads of JSON bodies, path ids and query values; bad input is a 400 (D19)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from aiohttp import web

from adapters.http.auth import Handler, authenticated, requires_auth
from adapters.http.openapi import RouteTable
from app.billing_ext.account import UNSET, Unset
from domain.enums import PaymentMethod
from domain.errors import InvalidInput
from domain.model import User

U64_MAX = 2**64 - 1
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


def path_id(request: web.Request, name: str = "id") -> int:
    """A u64 path id; the route's `\\d+` admits digits only, so only overflow remains."""
    raw = request.match_info[name]
    if not raw.isdigit() or int(raw) > U64_MAX:
        raise InvalidInput(f"Invalid {name}: {raw}")
    return int(raw)


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


def integer(
    body: Body, name: str, *, minimum: int = 0, maximum: int = U64_MAX, required: bool = True
) -> int | None:
    """An integer field; integral floats (`2.0`, .NET clients) are accepted, bools are not."""
    value = body.get(name)
    if value is None:
        if required:
            raise _missing(name)
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"`{name}` must be an integer")
    if not minimum <= value <= maximum:
        raise InvalidInput(f"`{name}` must be between {minimum} and {maximum}")
    return value


def required_integer(body: Body, name: str, *, minimum: int = 0, maximum: int = U64_MAX) -> int:
    value = integer(body, name, minimum=minimum, maximum=maximum)
    assert value is not None
    return value


def boolean(body: Body, name: str, *, required: bool = True) -> bool | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _missing(name)
        return None
    if not isinstance(value, bool):
        raise InvalidInput(f"`{name}` must be true or false")
    return value


def required_boolean(body: Body, name: str) -> bool:
    value = boolean(body, name)
    assert value is not None
    return value


def text(body: Body, name: str, *, required: bool = True) -> str | None:
    """A string field; null counts as absent."""
    value = body.get(name)
    if value is None:
        if required:
            raise _missing(name)
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"`{name}` must be a string")
    return value


def required_text(body: Body, name: str) -> str:
    value = text(body, name)
    assert value is not None
    return value


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
