"""NIP-98 for aiohttp handlers: verify the request, find or create its user (api.md §4.1)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import attrs
from aiohttp import hdrs, web

from adapters.http.client_limit import client_keys
from adapters.http.context import SERVICES
from adapters.http.nip98 import (
    DEFAULT_MAX_SKEW,
    Nip98Error,
    Nip98Request,
    NostrEvent,
    Origin,
    verify_nip98_event,
    verify_nip98_token,
)
from adapters.http.replay import InProcessReplayGuard, ReplayShares
from domain.model import User
from ports.clock import Clock
from ports.replay import ReplayGuard
from ports.storage import UnitOfWork, UnitOfWorkFactory

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UserHandler = Callable[[web.Request, User], Awaitable[web.StreamResponse]]
ReadHandler = Callable[[web.Request, User, UnitOfWork], Awaitable[web.StreamResponse]]
KeyReadHandler = Callable[[web.Request, "VerifiedKey", UnitOfWork], Awaitable[web.StreamResponse]]
KeyHandler = Callable[[web.Request, "VerifiedKey"], Awaitable[web.StreamResponse]]

#: Set on handlers wrapped by `authenticated`; the route table checks it against `auth=`.
AUTH_MARK = "lnvps_auth"


#: methods whose events may be used again within the window (D26 guards every other one).
REPLAYABLE_METHODS = frozenset({"GET"})


def _origin(public_url: str | None) -> Origin | None:
    if not public_url:
        return None
    origin = Origin.of(public_url)
    if origin is None:
        raise ValueError(f"public-url must be an absolute http(s) URL, got {public_url!r}")
    return origin


@attrs.frozen
class Authenticator:
    """Everything NIP-98 needs from the outside: storage for the upsert, the clock that judges
    `created_at`, and D26's binding: the configured `public_url` (None: any host, as the
    reference), the guard that refuses a second use of a non-GET event and the `shares` of
    it one client may hold (`ReplayShares`; None: no per-client bound)."""

    uow_factory: UnitOfWorkFactory
    clock: Clock
    max_skew: int = DEFAULT_MAX_SKEW
    public_url: str | None = None
    replays: ReplayGuard = attrs.field(factory=InProcessReplayGuard)
    shares: ReplayShares | None = attrs.field(factory=ReplayShares)
    origin: Origin | None = attrs.field(init=False)

    @origin.default
    def _origin_default(self) -> Origin | None:
        return _origin(self.public_url)

    def request(self, method: str, target: str, now: datetime, body: bytes | None) -> Nip98Request:
        """What an event for this request is checked against, with this binding's windows."""
        return Nip98Request(method, target, now, body, self.max_skew, self.origin)

    async def use_once(
        self, event: NostrEvent, now: datetime, addresses: tuple[str, ...] = ()
    ) -> None:
        """Refuse `event` if it was used before (`Nip98Error` 401), else remember it for as
        long as its `created_at` passes the window: until `created_at + max_skew` is past
        (whole seconds, so one more), which is exactly as long as it could be accepted. The
        id is charged to its key and the client's `addresses` (`client_keys`) under
        `shares`: 429 `ReplayShareExceeded` for a client over its share."""
        until = datetime.fromtimestamp(event.created_at, now.tzinfo) + timedelta(
            seconds=self.max_skew + 1
        )
        shares = () if self.shares is None else self.shares.of(event.pubkey, addresses)
        if not await self.replays.first_use(event.id, now, until, shares):
            raise Nip98Error("Event already used")

    async def upsert(self, pubkey: bytes, now: datetime) -> User:
        """The user with this key, created with the reference's defaults when new.

        A known user is one read and no write; only an unknown key inserts and commits (a
        concurrent first request of the same key finds the row the other one inserted).
        """
        async with self.uow_factory() as uow:
            return await self.user_in(uow, pubkey, now)

    async def user_in(self, uow: UnitOfWork, pubkey: bytes, now: datetime) -> User:
        """`upsert` inside the caller's unit of work (committed only when the user is new;
        the unit of work then goes on in a new transaction)."""
        user = await uow.users.get_by_pubkey(pubkey)
        if user is None:
            user = await uow.users.get_or_create_by_pubkey(pubkey, now)
            await uow.commit()
        return user


@attrs.frozen
class AuthBinding:
    """What the composition root decides for D26: the public URL events must name (None: any
    host), the replay guard (None: one in-process guard per application) and each client's
    share of it (None: none)."""

    public_url: str | None = None
    replays: ReplayGuard | None = None
    shares: ReplayShares | None = attrs.field(factory=ReplayShares)

    def authenticator(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> Authenticator:
        if self.replays is None:
            return Authenticator(uow_factory, clock, public_url=self.public_url, shares=self.shares)
        return Authenticator(
            uow_factory, clock, public_url=self.public_url, replays=self.replays, shares=self.shares
        )


AUTHENTICATOR = web.AppKey("lnvps.authenticator", Authenticator)
_USER = web.RequestKey("lnvps.user", User)
_EVENT = web.RequestKey("lnvps.nip98_event", NostrEvent)
_USED_ONCE = web.RequestKey("lnvps.nip98_event_used", bool)


def setup_auth(app: web.Application, authenticator: Authenticator) -> None:
    """Attach the authenticator; sub-applications find it through `config_dict`."""
    app[AUTHENTICATOR] = authenticator


async def authenticate(request: web.Request) -> User:
    """Verify the `Authorization` header for this request and return its (upserted) user.

    Uses the raw request path with its query and the method, the clock read once, and the
    body (read once; aiohttp caches it for the handler) for an optional `payload` tag. Raises
    `Nip98Error`, which the error middleware renders as 401 JSON. The user is cached per
    request.
    """
    if _USER in request:
        return request[_USER]
    auth = request.config_dict[AUTHENTICATOR]
    pubkey, now = await verify_request(request)
    user = await auth.upsert(pubkey, now)
    request[_USER] = user
    return user


async def user_in(request: web.Request, uow: UnitOfWork, pubkey: bytes, now: datetime) -> User:
    """The verified key's user, found (or created) in the caller's unit of work; cached."""
    if _USER in request:
        return request[_USER]
    user = await request.config_dict[AUTHENTICATOR].user_in(uow, pubkey, now)
    request[_USER] = user
    return user


async def verify_request(request: web.Request, *, take: bool = True) -> tuple[bytes, datetime]:
    """The pubkey of the request's valid NIP-98 event, and the time it was judged at; no
    storage touched (`Nip98Error` otherwise).

    D26: a non-GET event is good once, taken here unless `take` is False: then the caller
    must call `take_event` before acting (the admin API takes it only once the caller's
    permissions are checked, so keys without them never take a place in its guard)."""
    auth = request.config_dict[AUTHENTICATOR]
    now = auth.clock.now()
    header = request.headers.get(hdrs.AUTHORIZATION)
    # the body is only worth reading (up to client_max_size) once the scheme is right
    body = await request.read() if header is not None and header.startswith("Nostr ") else None
    checked = auth.request(request.method, request.rel_url.raw_path_qs, now, body)
    event = verify_nip98_event(header, checked)
    request[_EVENT] = event
    if take:
        await take_event(request)
    return event.pubkey, now


async def take_event(request: web.Request) -> None:
    """D26 for a verified non-GET request: its event is good once (`use_event_once`); a GET
    is left replayable within its window."""
    if request.method not in REPLAYABLE_METHODS:
        await use_event_once(request)


async def use_event_once(request: web.Request) -> None:
    """The request's verified event is good once (`Nip98Error` 401 when seen before): every
    non-GET one (`take_event`), and a GET that spends money (a renewal paid from the user's
    wallet or account credit). Asking again within the same request changes nothing. The id
    is charged to the key and the client's address (`Authenticator.use_once`)."""
    if request.get(_USED_ONCE):
        return
    authenticator = request.config_dict[AUTHENTICATOR]
    services = request.config_dict.get(SERVICES)
    trusted = services is not None and services.trust_forwarded_for
    addresses = client_keys(request, trusted)
    await authenticator.use_once(request[_EVENT], authenticator.clock.now(), addresses)
    request[_USED_ONCE] = True


async def authenticate_query(request: web.Request, path: str, param: str = "auth") -> User:
    """The `?auth=<base64 event>` variant for GET links (invoice page): path given by the server.

    Refusals are `Nip98Error`s whose `text` is the reference's ("Missing or invalid auth
    param" / "Invalid auth event"); the handler decides how to show them.
    """
    auth = request.config_dict[AUTHENTICATOR]
    now = auth.clock.now()
    checked = auth.request("GET", path, now, None)
    pubkey = verify_nip98_token(request.query.get(param), checked)
    return await auth.upsert(pubkey, now)


def authenticated(handler: UserHandler) -> Handler:
    """Decorator: the handler gets `(request, user)`; auth runs before anything else."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        user = await authenticate(request)
        return await handler(request, user)

    return mark_authenticated(wrapper)


def authenticated_read(handler: ReadHandler) -> Handler:
    """Decorator for reads: the handler gets `(request, user, uow)`, the user looked up in the
    same unit of work the handler reads in (one connection for the request; a write only for
    a new user)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        pubkey, now = await verify_request(request)
        async with request.config_dict[AUTHENTICATOR].uow_factory() as uow:
            return await handler(request, await user_in(request, uow, pubkey, now), uow)

    return mark_authenticated(wrapper)


@attrs.frozen
class VerifiedKey:
    """A request's verified NIP-98 key and the time it was judged at; `user` finds (or
    creates) its user, in the caller's unit of work or its own, as `authenticated` would."""

    request: web.Request
    pubkey: bytes
    now: datetime

    async def use_once(self) -> None:
        """`use_event_once` for this request."""
        await use_event_once(self.request)

    async def user(self, uow: UnitOfWork | None = None) -> User:
        if uow is not None:
            return await user_in(self.request, uow, self.pubkey, self.now)
        if _USER not in self.request:
            authenticator = self.request.config_dict[AUTHENTICATOR]
            self.request[_USER] = await authenticator.upsert(self.pubkey, self.now)
        return self.request[_USER]


def verified(handler: KeyHandler) -> Handler:
    """Decorator for handlers whose use case checks ownership by the caller's key (issue 10):
    the handler gets `(request, key)` and must call `await key.user()` whenever it fails, so
    that a new key's user is created as `authenticated` would have done first."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        pubkey, now = await verify_request(request)
        return await handler(request, VerifiedKey(request, pubkey, now))

    return mark_authenticated(wrapper)


def verified_read(handler: KeyReadHandler) -> Handler:
    """Decorator for reads that select by the owner's key (issue 10): the handler gets
    `(request, key, uow)` and must call `key.user(uow)` whenever its read found nothing, so
    that a new key's user is created and every refusal is what `authenticated_read` gives."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        pubkey, now = await verify_request(request)
        async with request.config_dict[AUTHENTICATOR].uow_factory() as uow:
            return await handler(request, VerifiedKey(request, pubkey, now), uow)

    return mark_authenticated(wrapper)


def mark_authenticated(handler: Handler) -> Handler:
    """Declare that a handler authenticates (for other wrappers, e.g. admin RBAC)."""
    setattr(handler, AUTH_MARK, True)
    return handler


def requires_auth(handler: object) -> bool:
    """True for handlers made by `authenticated`."""
    return bool(getattr(handler, AUTH_MARK, False))
