"""Per-client-address (D25) and per-user rate limits: who is asking, and the 429 once their
bucket is empty."""

from __future__ import annotations

import functools
import ipaddress
import math
from typing import Any

from aiohttp import web

from adapters.http.auth import Handler
from adapters.http.context import services
from adapters.http.envelope import json_response
from ports.ratelimit import RateLimiter


def client_key(request: web.Request, trust_forwarded_for: bool) -> str:
    """Who is asking: the peer address, or behind a trusted proxy the last X-Forwarded-For
    entry (the one the proxy appended; earlier entries are the client's to invent).

    An IPv6 client is keyed by its /64, since one host gets a whole /64 to pick from.
    """
    raw = request.remote or ""
    forwarded = request.headers.get("X-Forwarded-For") if trust_forwarded_for else None
    if forwarded:
        raw = forwarded.split(",")[-1].strip()
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64] or "unknown"  # bounded: it becomes a memory or Redis key
    if address.version == 6:
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


async def wait_seconds(request: web.Request, limiter: RateLimiter | None) -> int:
    """Take one of the client's tokens: 0 to go on, else the whole seconds (≥ 1) until one
    is free. No limiter: never limited. Keyed as `client_key` with the one proxy rule of
    every limit (`lnurl.trust-forwarded-for`)."""
    if limiter is None:
        return 0
    return _whole(await limiter.acquire(client_key(request, services(request).trust_forwarded_for)))


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
