"""CORS as tower-http's `CorsLayer::very_permissive()` (api.md §1): mirror everything asked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_VARY = "origin, access-control-request-method, access-control-request-headers"


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every OPTIONS request as a preflight, for any path (404 paths included)."""
    if request.method == hdrs.METH_OPTIONS:
        response = web.Response(status=200)
        requested_method = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD)
        if requested_method is not None:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = requested_method
        requested_headers = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
        if requested_headers is not None:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = requested_headers
        return response
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: every response (errors too) mirrors the request's Origin."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
    response.headers.add(hdrs.VARY, _VARY)


def setup_cors(app: web.Application) -> None:
    """Install the preflight middleware (outermost) and the response-header hook."""
    app.middlewares.insert(0, cors_middleware)
    app.on_response_prepare.append(add_cors_headers)
