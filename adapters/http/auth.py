"""NIP-98 for aiohttp handlers: verify the request, upsert its user (api.md §4.1)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime

import attrs
from aiohttp import hdrs, web

from adapters.http.nip98 import DEFAULT_MAX_SKEW, verify_nip98, verify_nip98_token
from domain.model import User
from ports.clock import Clock
from ports.storage import UnitOfWorkFactory

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UserHandler = Callable[[web.Request, User], Awaitable[web.StreamResponse]]

#: Set on handlers wrapped by `authenticated`; the route table checks it against `auth=`.
AUTH_MARK = "lnvps_auth"


@attrs.frozen
class Authenticator:
    """Everything NIP-98 needs from the outside: storage for the upsert and the clock."""

    uow_factory: UnitOfWorkFactory
    clock: Clock
    max_skew: int = DEFAULT_MAX_SKEW

    async def upsert(self, pubkey: bytes, now: datetime) -> User:
        """The user with this key, created with the reference's defaults when new."""
        async with self.uow_factory() as uow:
            user = await uow.users.get_or_create_by_pubkey(pubkey, now)
            await uow.commit()
        return user


AUTHENTICATOR = web.AppKey("lnvps.authenticator", Authenticator)
_USER = web.RequestKey("lnvps.user", User)


def setup_auth(app: web.Application, authenticator: Authenticator) -> None:
    """Attach the authenticator; sub-applications find it through `config_dict`."""
    app[AUTHENTICATOR] = authenticator


async def authenticate(request: web.Request) -> User:
    """Verify the `Authorization` header for this request and return its (upserted) user.

    Uses the raw request path and method, the clock read once, and the body (read once;
    aiohttp caches it for the handler) for an optional `payload` tag. Raises `Nip98Error`,
    which the error middleware renders as 401/403 JSON. The user is cached per request.
    """
    if _USER in request:
        return request[_USER]
    auth = request.config_dict[AUTHENTICATOR]
    now = auth.clock.now()
    header = request.headers.get(hdrs.AUTHORIZATION)
    # the body is only worth reading (up to client_max_size) once the scheme is right
    body = await request.read() if header is not None and header.startswith("Nostr ") else None
    pubkey = verify_nip98(
        header,
        request.method,
        request.rel_url.raw_path,
        now,
        body,
        auth.max_skew,
    )
    user = await auth.upsert(pubkey, now)
    request[_USER] = user
    return user


async def authenticate_query(request: web.Request, path: str, param: str = "auth") -> User:
    """The `?auth=<base64 event>` variant for GET links (invoice page): path given by the server.

    Refusals are `Nip98Error`s whose `text` is the reference's ("Missing or invalid auth
    param" / "Invalid auth event"); the handler decides how to show them.
    """
    auth = request.config_dict[AUTHENTICATOR]
    now = auth.clock.now()
    pubkey = verify_nip98_token(request.query.get(param), "GET", path, now, None, auth.max_skew)
    return await auth.upsert(pubkey, now)


def authenticated(handler: UserHandler) -> Handler:
    """Decorator: the handler gets `(request, user)`; auth runs before anything else."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        user = await authenticate(request)
        return await handler(request, user)

    return mark_authenticated(wrapper)


def mark_authenticated(handler: Handler) -> Handler:
    """Declare that a handler authenticates (for other wrappers, e.g. admin RBAC)."""
    setattr(handler, AUTH_MARK, True)
    return handler


def requires_auth(handler: object) -> bool:
    """True for handlers made by `authenticated`."""
    return bool(getattr(handler, AUTH_MARK, False))
