"""Handler factories for the admin catalogue's uniform list/get/create/update/delete routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from aiohttp import web

from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import page_of
from adapters.http.auth import Handler
from adapters.http.context import services
from adapters.http.envelope import data_response, page_response, parse_page
from adapters.http.vm_params import path_id
from app.services import Services
from domain.enums import AdminAction, AdminResource

R = TypeVar("R")
D = TypeVar("D")
Fields = dict[str, object]
#: a record as the admin API shows it (`views_catalogue.*_json`)
Render = Callable[[R], Any]


class ReadFields(Protocol):
    """A route's body reader: the create fields, or with `patch` only those sent."""

    async def __call__(self, request: web.Request, *, patch: bool) -> Fields: ...


def list_route(
    resource: AdminResource,
    rows: Callable[[web.Request, Services], Awaitable[Sequence[R]]],
    render: Render[R],
) -> Handler:
    """GET: one page of `rows` (which may read filters from the query), rendered."""

    @require(resource, AdminAction.VIEW)
    async def handler(request: web.Request, admin: Admin) -> web.StreamResponse:
        page = parse_page(request.query)
        found = await rows(request, services(request))
        return page_response([render(r) for r in page_of(found, page)], len(found), page)

    return handler


def get_route(
    resource: AdminResource,
    one: Callable[[Services, int], Awaitable[R]],
    render: Render[R],
) -> Handler:
    """GET …/{id}: the record, rendered."""

    @require(resource, AdminAction.VIEW)
    async def handler(request: web.Request, admin: Admin) -> web.StreamResponse:
        return data_response(render(await one(services(request), path_id(request))))

    return handler


def create_route(
    resource: AdminResource,
    fields: ReadFields,
    create: Callable[[Services, Fields], Awaitable[R]],
    render: Render[R],
) -> Handler:
    """POST: the body read by `fields`, then the created record, rendered."""
    return _body_route(
        resource, AdminAction.CREATE, fields, lambda svc, _, body: create(svc, body), render
    )


def update_route(
    resource: AdminResource,
    fields: ReadFields,
    update: Callable[[Services, int, Fields], Awaitable[R]],
    render: Render[R],
) -> Handler:
    """PATCH …/{id}: the fields sent (read before the id), then the updated record, rendered."""
    return _body_route(
        resource,
        AdminAction.UPDATE,
        fields,
        lambda svc, request, body: update(svc, path_id(request), body),
        render,
    )


def _body_route(
    resource: AdminResource,
    action: AdminAction,
    fields: ReadFields,
    write: Callable[[Services, web.Request, Fields], Awaitable[R]],
    render: Render[R],
) -> Handler:
    """A write whose body `fields` reads (a PATCH: only the fields sent), rendered."""

    @require(resource, action)
    async def handler(request: web.Request, admin: Admin) -> web.StreamResponse:
        body = await fields(request, patch=action is AdminAction.UPDATE)
        return data_response(render(await write(services(request), request, body)))

    return handler


def delete_route(
    resource: AdminResource,
    delete: Callable[[Services, int], Awaitable[D]],
    answer: Callable[[D], Any],
) -> Handler:
    """DELETE …/{id}: `answer` of what the delete returned (None, a message)."""

    @require(resource, AdminAction.DELETE)
    async def handler(request: web.Request, admin: Admin) -> web.StreamResponse:
        return data_response(answer(await delete(services(request), path_id(request))))

    return handler
