"""CORS: tower-http's `very_permissive()` shape (api.md §1), with configurable origins.

Without configured origins every `Origin` is mirrored, as the reference does, but without
`Access-Control-Allow-Credentials` (NIP-98 rides in the `Authorization` header, which needs no
credentials mode, so no page on another origin gets a credentialed read). With `cors-origins`
only those origins are mirrored, with credentials allowed; others get no CORS headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import attrs
from aiohttp import hdrs, web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_VARY = "origin, access-control-request-method, access-control-request-headers"


@attrs.frozen
class CorsPolicy:
    """`origins` None: any origin, no credentials; else exactly these, with credentials."""

    origins: frozenset[str] | None = None

    @classmethod
    def of(cls, origins: Iterable[str] | None) -> CorsPolicy:
        """From the `cors-origins` setting: absent or empty (or `*`) means any origin."""
        listed = frozenset(o.strip().rstrip("/") for o in origins or () if o.strip())
        return cls(None if not listed or "*" in listed else listed)

    def allows(self, origin: str) -> bool:
        return self.origins is None or origin in self.origins

    @property
    def credentials(self) -> bool:
        return self.origins is not None


CORS_POLICY = web.AppKey("cors_policy", CorsPolicy)


def _policy(request: web.Request) -> CorsPolicy:
    return request.app.get(CORS_POLICY) or CorsPolicy()


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every OPTIONS request as a preflight, for any path (404 paths included)."""
    if request.method == hdrs.METH_OPTIONS:
        response = web.Response(status=200)
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None or not _policy(request).allows(origin):
            return response
        requested_method = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD)
        if requested_method is not None:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = requested_method
        requested_headers = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
        if requested_headers is not None:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = requested_headers
        return response
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: every response (errors too) mirrors an allowed Origin."""
    response.headers.add(hdrs.VARY, _VARY)
    origin = request.headers.get(hdrs.ORIGIN)
    policy = _policy(request)
    if origin is None or not policy.allows(origin):
        return
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
    if policy.credentials:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"


def setup_cors(app: web.Application, origins: Iterable[str] | None = None) -> None:
    """Install the preflight middleware (outermost) and the response-header hook."""
    app[CORS_POLICY] = CorsPolicy.of(origins)
    app.middlewares.insert(0, cors_middleware)
    app.on_response_prepare.append(add_cors_headers)
