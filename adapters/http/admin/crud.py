"""Handler factories and route registration for the admin catalogue's uniform CRUD routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import attrs
from aiohttp import web

from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, add, page_of
from adapters.http.admin.fields import patch_of
from adapters.http.auth import Handler
from adapters.http.context import services
from adapters.http.envelope import data_response, page_response, parse_page
from adapters.http.openapi import QueryParam, RouteTable, Schema
from adapters.http.vm_params import path_id
from app.services import Services
from domain.enums import AdminAction, AdminResource

R = TypeVar("R")
D = TypeVar("D")
Fields = dict[str, object]
#: a record as the admin API shows it (`views_catalogue.*_json`)
Render = Callable[[R], Any]
Rows = Callable[[web.Request, Services], Awaitable[Sequence[R]]]
One = Callable[[Services, int], Awaitable[R]]


class ReadFields(Protocol):
    """A route's body reader: the create fields, or with `patch` only those sent."""

    async def __call__(self, request: web.Request, *, patch: bool) -> Fields: ...


def list_route(resource: AdminResource, rows: Rows[R], render: Render[R]) -> Handler:
    """GET: one page of `rows` (which may read filters from the query), rendered."""

    @require(resource, AdminAction.VIEW)
    async def handler(request: web.Request, admin: Admin) -> web.StreamResponse:
        page = parse_page(request.query)
        found = await rows(request, services(request))
        return page_response([render(r) for r in page_of(found, page)], len(found), page)

    return handler


def get_route(resource: AdminResource, one: One[R], render: Render[R]) -> Handler:
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


@attrs.frozen
class Routes:
    """One resource's list/get/create/update handlers and, when it can be deleted, its delete."""

    list: Handler
    get: Handler
    create: Handler
    update: Handler
    delete: Handler | None = None


@attrs.frozen(kw_only=True)
class Crud(Generic[R, D]):
    """What a uniform catalogue resource calls: its rows, one record, its writes (through the
    body reader `fields`), its delete and the answer made of what the delete returned."""

    resource: AdminResource
    render: Render[R]
    fields: ReadFields
    rows: Rows[R]
    one: One[R]
    create: Callable[[Services, Fields], Awaitable[R]]
    update: Callable[[Services, int, Fields], Awaitable[R]]
    delete: Callable[[Services, int], Awaitable[D]]
    answer: Callable[[D], Any]

    def routes(self) -> Routes:
        """The five handlers, each checking the resource's permission for its action."""
        res, render, fields = self.resource, self.render, self.fields
        return Routes(
            list_route(res, self.rows, render),
            get_route(res, self.one, render),
            create_route(res, fields, self.create, render),
            update_route(res, fields, self.update, render),
            delete_route(res, self.delete, self.answer),
        )


@attrs.frozen(kw_only=True)
class Docs:
    """The OpenAPI side of a resource's routes: one summary a route, the record's schema, the
    create body's (a PATCH takes `patch_of` it), the delete's answer and the list's filters."""

    list: str
    get: str
    create: str
    update: str
    delete: str = ""
    response: Schema
    request: Schema
    deleted: Schema | None = None
    query: Sequence[QueryParam] = ()


@attrs.frozen
class Resource:
    """A catalogue resource at `path`: its CRUD routes, their docs and its other routes."""

    path: str
    routes: Routes
    docs: Docs
    more: Callable[[RouteTable], None] | None = None


def add_crud(table: RouteTable, path: str, routes: Routes, docs: Docs) -> None:
    """Register `path` (GET list, POST) and `path/{id}` (GET, PATCH, and DELETE if any)."""
    one = f"{path}/{ID}"
    response = docs.response
    add(
        table,
        "GET",
        path,
        routes.list,
        docs.list,
        response=response,
        paginated=True,
        query=docs.query,
    )
    add(table, "GET", one, routes.get, docs.get, response=response)
    add(table, "POST", path, routes.create, docs.create, request=docs.request, response=response)
    patch = patch_of(docs.request)
    add(table, "PATCH", one, routes.update, docs.update, request=patch, response=response)
    if routes.delete is not None:
        if not docs.delete or docs.deleted is None:
            raise ValueError(f"DELETE {path}: no summary or answer schema documented")
        add(table, "DELETE", one, routes.delete, docs.delete, response=docs.deleted)
