"""Per-client-address (D25) and per-user rate limits: who is asking, and the 429 once their
bucket is empty."""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
from typing import TYPE_CHECKING, Any

from aiohttp import web

from adapters.http.context import services
from adapters.http.envelope import json_response
from ports.ratelimit import RateLimiter

if TYPE_CHECKING:  # auth keys its replay shares by `client_keys`: no import cycle at run time
    from adapters.http.auth import Handler

log = logging.getLogger("lnvps.http")


#: prefix length of the wider IPv6 bucket: one customer is routed up to a /48, 65 536 /64s
WIDE_V6_PREFIX = 48
#: the /48 bucket holds this many times the /64's burst and refill rate, so one home network
#: keeps its old allowance while cycling /64s inside one /48 buys at most this many /64s' worth
WIDE_V6_SCALE = 8

_proxy_warned = False


def client_keys(request: web.Request, trust_forwarded_for: bool) -> tuple[str, ...]:
    """Who is asking, narrowest bucket first: the peer address, or behind a trusted proxy the
    last X-Forwarded-For entry (the one the proxy appended; earlier entries are the client's
    to invent). Several header lines are one list (RFC 9110 §5.3), joined in order: a proxy
    that adds its own line (HAProxy `option forwardfor`) puts the real peer in the last one.

    An IPv4 client is one key. An IPv6 client is keyed by its /64 (one host gets a whole /64
    to pick from) and by its /48: one customer is routinely routed a /56 or a /48 (free from
    tunnel brokers), and each /64 in it would otherwise be a fresh bucket.
    """
    forwarded = ", ".join(request.headers.getall("X-Forwarded-For", ()))
    if forwarded and not trust_forwarded_for:
        _warn_proxy_once()
    raw = request.remote or ""
    if forwarded and trust_forwarded_for:
        raw = forwarded.split(",")[-1].strip()
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return (raw[:64] or "unknown",)  # bounded: it becomes a memory or Redis key
    if address.version == 6:
        mapped = address.ipv4_mapped
        if mapped is not None:
            return (str(mapped),)
        return (
            str(ipaddress.ip_network(f"{address}/64", strict=False)),
            str(ipaddress.ip_network(f"{address}/{WIDE_V6_PREFIX}", strict=False)),
        )
    return (str(address),)


def client_network(request: web.Request, trust_forwarded_for: bool) -> str:
    """The widest of `client_keys`: what one client (its whole network) is counted as."""
    return client_keys(request, trust_forwarded_for)[-1]


def _warn_proxy_once() -> None:
    """An `X-Forwarded-For` the limits ignore: behind a proxy, every client shares its bucket."""
    global _proxy_warned
    if not _proxy_warned:
        _proxy_warned = True
        log.warning(
            "X-Forwarded-For seen but lnurl.trust-forwarded-for is off: the per-address limits"
            " (LNURL and orders) key every client by the peer address, so behind a reverse"
            " proxy all clients share the proxy's bucket"
        )


async def wait_seconds(request: web.Request, limiter: RateLimiter | None) -> int:
    """Take one of the client's tokens: 0 to go on, else the whole seconds (≥ 1) until one
    is free. No limiter: never limited. Keyed as `client_keys` with the one proxy rule of
    every limit (`lnurl.trust-forwarded-for`); an IPv6 client must pass its /64 and its /48
    bucket (`WIDE_V6_SCALE` times the allowance), and a refusal takes from neither."""
    if limiter is None:
        return 0
    narrow, *wide = client_keys(request, services(request).trust_forwarded_for)
    return _whole(await limiter.acquire(narrow, [(key, WIDE_V6_SCALE) for key in wide]))


async def user_wait_seconds(limiter: RateLimiter | None, user_id: int) -> int:
    """`wait_seconds` for a bucket keyed by the authenticated user instead of the address."""
    if limiter is None:
        return 0
    return _whole(await limiter.acquire(f"user:{user_id}"))


def _whole(wait: float) -> int:
    """0 to go on, else the whole seconds (≥ 1) until a token is free."""
    return max(1, math.ceil(wait)) if wait > 0 else 0


def too_many(seconds: int, body: dict[str, Any]) -> web.Response:
    """429 with `body` and `Retry-After: seconds`."""
    response = json_response(body, 429)
    response.headers["Retry-After"] = str(seconds)
    return response


def order_rate_limited(handler: Handler) -> Handler:
    """Decorator for the order routes (D25): each client address may place `order-rate`
    orders, whatever keys it signs with (a new key is a new user, so the per-user cap of
    never-paid VMs alone does not bound one client). Checked before authentication, so a
    refused request creates nothing, not even the user of a new key."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        seconds = await wait_seconds(request, services(request).order_limiter)
        if seconds:
            return too_many(seconds, {"error": f"Too many orders: try again in {seconds} s"})
        return await handler(request)

    return wrapper
