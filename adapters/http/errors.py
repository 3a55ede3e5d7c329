"""The one error middleware: domain, auth, busy and unexpected errors → `{"error": …}` (D19)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from adapters.http.envelope import HttpError, error_response
from adapters.http.nip98 import Nip98Error
from domain.errors import DomainError
from ports.storage import StorageBusy

log = logging.getLogger("lnvps.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: D19: each DomainError kind has one honest status.
STATUS_BY_KIND: dict[str, int] = {
    "unauthorized": 401,
    "bad_input": 400,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "unprocessable": 422,
    "too_many": 429,
    "unavailable": 503,
    #: a payment provider refused the request for good: not the caller's fault, not "retry"
    "provider_refused": 502,
}

#: a busy database (StorageBusy): the request may be sent again, after `Retry-After` seconds
BUSY_STATUS = 503
#: `Retry-After` (seconds) of a 503 for a busy database: lock waits end within seconds
BUSY_RETRY_AFTER_S = 1

#: The only text a user sees for a bug (the reference's sanitised user-API message).
INTERNAL_ERROR = "An internal error occurred"


def status_for(error: DomainError) -> int | None:
    """The status of a domain error's kind, None for a kind nobody mapped (a bug)."""
    return STATUS_BY_KIND.get(error.kind)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure as JSON; the details of a 500 go to the log, never the body."""
    try:
        return await handler(request)
    except Nip98Error as exc:
        log.info("auth refused on %s %s: %s", request.method, request.path, exc.reason)
        return error_response(exc.status, exc.text)
    except HttpError as exc:
        return error_response(exc.status, exc.message)
    except DomainError as exc:
        status = status_for(exc)
        if status is None:
            log.error(
                "domain error with unmapped kind %r on %s %s: %s",
                exc.kind,
                request.method,
                request.path,
                exc.message,
            )
            return error_response(500, INTERNAL_ERROR)
        if status >= 500:
            log.warning("%s %s unavailable: %s", request.method, request.path, exc.message)
        response = error_response(status, exc.message)
        retry_after = getattr(exc, "retry_after", None)  # a refusal that knows when to ask again
        if isinstance(retry_after, int) and retry_after > 0:
            response.headers[hdrs.RETRY_AFTER] = str(retry_after)
        return response
    except StorageBusy as exc:
        log.warning(
            "%s %s: database busy, answered 503: %s", request.method, request.path, exc.__cause__
        )
        response = error_response(BUSY_STATUS, exc.message)
        response.headers[hdrs.RETRY_AFTER] = str(BUSY_RETRY_AFTER_S)
        return response
    except web.HTTPException as exc:
        return _http_exception(request, exc)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, INTERNAL_ERROR)


def _http_exception(request: web.Request, exc: web.HTTPException) -> web.StreamResponse:
    """Every 4xx/5xx aiohttp raises, the router's 404/405 included, is `{"error": reason}`
    as `application/json` (the reference sent an empty body, which clients cannot read);
    a 405 keeps its `Allow` header."""
    if exc.status < 400:
        raise exc
    response = error_response(exc.status, exc.reason)
    if hdrs.ALLOW in exc.headers:
        response.headers[hdrs.ALLOW] = exc.headers[hdrs.ALLOW]
    return response
