"""A route table that registers aiohttp routes and describes them as OpenAPI 3.1."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs
from aiohttp import hdrs, web

from adapters.http.auth import requires_auth
from adapters.http.bounds import ID_SCHEMA, INT_MAX
from adapters.http.envelope import DEFAULT_LIMIT, MAX_LIMIT, json_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Schema = dict[str, Any]

_PARAM = re.compile(r"\{(\w+)(?::([^{}]*(?:\{[^{}]*\}[^{}]*)*))?\}")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ERROR_SCHEMA: Schema = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}
NIP98_SCHEME: Schema = {
    "type": "apiKey",
    "in": "header",
    "name": "Authorization",
    "description": "NIP-98: `Nostr <base64 of a signed kind-27235 event>`",
}


@attrs.frozen
class QueryParam:
    """A documented query parameter (or, with `location="header"`, a request header)."""

    name: str
    schema: Schema = attrs.field(factory=lambda: {"type": "string"})
    required: bool = False
    description: str = ""
    location: str = "query"


@attrs.frozen
class Route:
    """One endpoint: how aiohttp serves it and how OpenAPI describes it.

    `response` is the schema of the `data` value (wrapped in the envelope unless
    `enveloped` is False); `paginated` documents `limit`/`offset` and the page envelope.
    """

    method: str
    path: str
    handler: Handler
    summary: str
    auth: bool = False
    request: Schema | None = None
    response: Schema | None = None
    query: tuple[QueryParam, ...] = ()
    paginated: bool = False
    enveloped: bool = True
    content_type: str = "application/json"
    tags: tuple[str, ...] = ()
    #: further media types of a 200 (`text/plain` refusals of the LNURL and invoice pages)
    also_200: tuple[tuple[str, Schema], ...] = ()
    #: the error body when it is not `{"error"}` (the LNURL callback's LUD-06 object)
    error_schema: Schema | None = None


class RouteTable:
    """Routes in registration order (static before `{id}`, api.md §1), one source for both."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        summary: str,
        auth: bool | None = None,
        request: Schema | None = None,
        response: Schema | None = None,
        query: Iterable[QueryParam] = (),
        paginated: bool = False,
        enveloped: bool = True,
        content_type: str = "application/json",
        tags: Iterable[str] = (),
        also_200: Iterable[tuple[str, Schema]] = (),
        error_schema: Schema | None = None,
    ) -> Route:
        """Record a route; `auth` defaults to whether the handler is `@authenticated`."""
        method = method.upper()
        if method not in _METHODS:
            raise ValueError(f"unsupported method {method}")
        if auth is None:
            auth = requires_auth(handler)
        if auth != requires_auth(handler):
            raise ValueError(f"{method} {path}: auth={auth} but the handler says otherwise")
        route = Route(
            method,
            path,
            handler,
            summary,
            auth,
            request,
            response,
            tuple(query),
            paginated,
            enveloped,
            content_type,
            tuple(tags),
            tuple(also_200),
            error_schema,
        )
        self.routes.append(route)
        return route

    def register(self, app: web.Application) -> None:
        """Add every route to the app; a GET also answers HEAD, as axum's do."""
        for route in self.routes:
            if route.method == hdrs.METH_GET:
                app.router.add_get(route.path, route.handler)
            else:
                app.router.add_route(route.method, route.path, route.handler)

    def add_openapi_route(
        self, path: str = "/openapi.json", *, title: str = "LNVPS API", version: str = "1"
    ) -> None:
        """Serve this table's document at `path`; the route is itself in the document."""

        async def openapi_json(request: web.Request) -> web.StreamResponse:
            return json_response(self.document(title=title, version=version))

        self.add(
            "GET",
            path,
            openapi_json,
            summary="This OpenAPI document",
            response={"type": "object"},
            enveloped=False,
            tags=("meta",),
        )

    def document(self, *, title: str = "LNVPS API", version: str = "1") -> Schema:
        """The OpenAPI 3.1 document of every route in the table."""
        paths: dict[str, dict[str, Any]] = {}
        for route in self.routes:
            paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route)
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {
                "schemas": {"Error": ERROR_SCHEMA},
                "securitySchemes": {"nip98": NIP98_SCHEME},
            },
        }


def openapi_path(path: str) -> str:
    """aiohttp `{id:\\d+}` → OpenAPI `{id}`."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def documented_operations(document: Schema) -> set[tuple[str, str]]:
    """(METHOD, path) pairs an OpenAPI document lists."""
    return {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}


def served_operations(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) pairs the app's router serves, sub-apps included.

    HEAD twins of GET routes are left out (a GET implies HEAD, as in axum).
    """
    served: set[tuple[str, str]] = set()
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            # aiohttp has already prefixed the sub-app's own resources
            served |= served_operations(resource.get_info()["app"])
            continue
        path = openapi_path(resource.canonical)
        for route in resource:
            if route.method != hdrs.METH_HEAD:
                served.add((route.method, path))
    return served


def _operation(route: Route) -> Schema:
    op: Schema = {
        "summary": route.summary,
        "operationId": _operation_id(route),
        "responses": _responses(route),
    }
    if route.tags:
        op["tags"] = list(route.tags)
    params = _path_params(route.path) + [_query_param(q) for q in route.query]
    if route.paginated:
        params += _page_params()
    if params:
        op["parameters"] = params
    if route.request is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.request}},
        }
    if route.auth:
        op["security"] = [{"nip98": []}]
    return op


def _responses(route: Route) -> Schema:
    data = route.response if route.response is not None else {}
    if not route.enveloped:
        body = data
    elif route.paginated:
        body = {
            "type": "object",
            "properties": {
                "data": {"type": "array", "items": data},
                "total": {"type": "integer", "minimum": 0},
                "limit": {"type": "integer", "minimum": 0},
                "offset": {"type": "integer", "minimum": 0},
            },
            "required": ["data", "total", "limit", "offset"],
        }
    else:
        body = {"type": "object", "properties": {"data": data}, "required": ["data"]}
    ref = {"$ref": "#/components/schemas/Error"}
    error_body = ref if route.error_schema is None else {"anyOf": [ref, route.error_schema]}
    error = {"description": "Error", "content": {"application/json": {"schema": error_body}}}
    content = {route.content_type: {"schema": body}}
    content.update({media: {"schema": schema} for media, schema in route.also_200})
    responses: Schema = {"200": {"description": "OK", "content": content}}
    if route.auth:
        responses["401"] = {**error, "description": "NIP-98 check failed"}
        responses["403"] = {**error, "description": "No `Authorization: Nostr …` header"}
    responses["default"] = error
    return responses


def _path_params(path: str) -> list[Schema]:
    params = []
    for match in _PARAM.finditer(path):
        numeric = match.group(2) in (r"\d+", "[0-9]+")
        schema: Schema = dict(ID_SCHEMA) if numeric else {"type": "string"}
        params.append({"name": match.group(1), "in": "path", "required": True, "schema": schema})
    return params


def _query_param(q: QueryParam) -> Schema:
    param: Schema = {"name": q.name, "in": q.location, "required": q.required, "schema": q.schema}
    if q.description:
        param["description"] = q.description
    return param


def _page_params() -> list[Schema]:
    return [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": f"values above {MAX_LIMIT} are clamped to {MAX_LIMIT}",
            "schema": {
                "type": "integer",
                "minimum": 0,
                "maximum": INT_MAX,
                "default": DEFAULT_LIMIT,
            },
        },
        {
            "name": "offset",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "maximum": INT_MAX, "default": 0},
        },
    ]


def _operation_id(route: Route) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", openapi_path(route.path)).strip("_")
    return f"{route.method.lower()}_{slug}" if slug else route.method.lower()
