"""Shared bits of the admin routes: base path, route registration with permissions, queries."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypedDict, TypeVar, Unpack

from aiohttp import web

from adapters.http.admin.auth import Admin, needed_by, permission_of, require_all
from adapters.http.admin.fields import text, text_schema
from adapters.http.auth import Handler
from adapters.http.bounds import ID_MIN, parse_uint
from adapters.http.context import services
from adapters.http.envelope import PageParams
from adapters.http.openapi import QueryParam, RouteTable, Schema
from adapters.http.vm_params import path_id
from domain.errors import DomainError, InvalidInput
from ports.storage import Permission, UnitOfWork

BASE = "/api/admin/v1"
ID = r"{id:\d+}"
#: a first `{id}` segment that is not all digits (the reference's u64 extractor: 400).
_NOT_NUMERIC_ID = r"{id:(?![0-9]+(?:/|$))[^/]+}"
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
JOB_SCHEMA: Schema = {
    "type": "object",
    "properties": {"job_id": {"type": "string"}},
    "required": ["job_id"],
}
OBJECT: Schema = {"type": "object"}
NULL: Schema = {"type": "null"}
#: a TEXT column holds 65,535 bytes; 10,000 characters fit it in any UTF-8 (4 bytes each).
TEXT_LIMIT = 10_000
#: `name` of subscriptions and their line items (VARCHAR(200)); payment-method names too.
NAME_LIMIT = 200
#: `external_id` columns (VARCHAR(255)).
EXTERNAL_ID_LIMIT = 255
#: an RFC 3339 time or a date is far shorter.
DATE_LIMIT = 64
#: a nullable TEXT column's field: a description, a reason
TEXT_SCHEMA: Schema = text_schema(TEXT_LIMIT, nullable=True, multiline=True)


class RouteDoc(TypedDict, total=False):
    """What an admin route's OpenAPI entry says beyond its summary (`RouteTable.add`'s)."""

    request: Schema | None
    response: Schema | None
    query: Sequence[QueryParam]
    paginated: bool


def add(
    table: RouteTable,
    method: str,
    path: str,
    handler: Handler,
    summary: str,
    **doc: Unpack[RouteDoc],
) -> None:
    """Register `BASE + path`; the summary names the permission the handler checks.

    A path with `{id:\\d+}` gets a twin first that answers a non-numeric id with 400 after
    authenticating (as `add_id_route` does for the user API); OpenAPI keeps the real route.
    """
    needed = permission_of(handler)
    kw: dict[str, Any] = dict(
        doc, summary=f"{summary} (needs `{needed}`)" if needed else summary, tags=("admin",)
    )
    if ID in path:
        bad_id = _bad_id_needing(needed_by(handler))
        table.add(method, BASE + path.replace(ID, _NOT_NUMERIC_ID), bad_id, **kw)
    table.add(method, BASE + path, handler, **kw)


def _bad_id_needing(needed: tuple[Permission, ...]) -> Handler:
    """The 400 of a non-numeric id, after the same permission checks as the real route: a
    caller without them gets the 403 the real route gives, and is not recorded in the trail."""

    @require_all(needed)
    async def bad_id(request: web.Request, admin: Admin) -> web.StreamResponse:
        raise InvalidInput(f"Invalid id: {request.match_info['id']}")

    return bad_id


class ById(Protocol[T_co]):
    """A repository that reads one record by id."""

    async def get(self, record_id: int, /) -> T_co | None: ...


async def stored(
    request: web.Request, repository: Callable[[UnitOfWork], ById[T]], missing: DomainError
) -> T:
    """The record the path's `{id}` names, read in a unit of work of its own; else `missing`."""
    async with services(request).uow_factory() as uow:
        record = await repository(uow).get(path_id(request))
    if record is None:
        raise missing
    return record


def page_of(items: Sequence[T], page: PageParams) -> list[T]:
    return list(items[page.offset : page.offset + page.limit])


def query_uint(query: Mapping[str, str], name: str) -> int | None:
    """An optional id filter (`?user_id=`): empty is none, else 1..INT_MAX (400 otherwise)."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    return parse_uint(raw, name, minimum=ID_MIN)


def query_bool(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = query.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise InvalidInput(f"{name} must be true or false")
    return raw == "true"


def body_str(
    body: Mapping[str, Any], name: str, limit: int, *, multiline: bool = False
) -> str | None:
    """`body[name]`: absent or null is None, else a string of at most `limit` characters (its
    column's width), one line unless `multiline` (`fields.text`'s rules); else 400."""
    value = body.get(name)
    if value is None:
        return None
    parsed: str = text(limit, multiline=multiline)(value, name)
    return parsed
