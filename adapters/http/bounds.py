"""Bounded integers at the HTTP edge: path ids, query and body numbers, and their OpenAPI schemas.

Every integer a request carries is checked here before it reaches a use case or storage, so a
value no backend can bind (SQLite and MariaDB take signed 64-bit integers) is a clean 400/404
instead of an OverflowError. The OpenAPI document states the same bounds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from app.billing.errors import NotFound
from domain.errors import InvalidInput

#: the widest integer every storage backend binds (signed BIGINT); ids and offsets stop here.
INT_MAX = 2**63 - 1
#: ids are assigned from 1; 0 names nothing.
ID_MIN = 1
_MAX_DIGITS = len(str(INT_MAX))
_QUERY_UINT = re.compile(r"\+?[0-9]+")
_PATH_DIGITS = re.compile(r"[0-9]+")

Schema = dict[str, Any]


def int_schema(minimum: int = 0, maximum: int = INT_MAX, **extra: Any) -> Schema:
    """`{"type": "integer", "minimum": …, "maximum": …}` plus `extra` keywords."""
    return {"type": "integer", "minimum": minimum, "maximum": maximum, **extra}


ID_SCHEMA: Schema = int_schema(ID_MIN)
UINT_SCHEMA: Schema = int_schema()


class UnknownId(NotFound):
    """A path id outside 1..INT_MAX: no such row can exist (404, as for any unknown id)."""


def path_id(request: web.Request, name: str = "id") -> int:
    """The `{name}` path segment as an id in 1..INT_MAX; anything else is a 404.

    The routes' `\\d+` also admits non-ASCII digits (`٣`) and any length; both end here.
    """
    raw = request.match_info[name]
    if not _PATH_DIGITS.fullmatch(raw) or len(raw.lstrip("0")) > _MAX_DIGITS:
        raise UnknownId("Not found")
    value = int(raw)
    if not ID_MIN <= value <= INT_MAX:
        raise UnknownId("Not found")
    return value


def parse_uint(raw: str, name: str, *, minimum: int = 0, maximum: int = INT_MAX) -> int:
    """A decimal query/form value in minimum..maximum (an optional `+` allowed); else 400."""
    digits = raw[1:] if raw.startswith("+") else raw
    if (
        not _QUERY_UINT.fullmatch(raw)
        or len(digits.lstrip("0")) > _MAX_DIGITS
        or not minimum <= int(digits) <= maximum
    ):
        raise InvalidInput(f"{name} must be a whole number from {minimum} to {maximum}")
    return int(digits)


def query_int(
    query: Mapping[str, str],
    name: str,
    default: int,
    *,
    minimum: int = 0,
    maximum: int = INT_MAX,
) -> int:
    """`?name=`: absent is `default`; otherwise `parse_uint` (400 when out of bounds)."""
    raw = query.get(name)
    if raw is None:
        return default
    return parse_uint(raw, name, minimum=minimum, maximum=maximum)


def check_int(value: object, name: str, *, minimum: int = 0, maximum: int = INT_MAX) -> int:
    """A JSON number that is a whole number in minimum..maximum; integral floats (`2.0`, .NET
    clients) count, booleans do not; else 400."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidInput(f"`{name}` must be a whole number from {minimum} to {maximum}")
    return value
