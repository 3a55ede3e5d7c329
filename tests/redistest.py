"""Test helper: a client on the test Redis (`LNVPS_TEST_REDIS_URL`) that skips or fails cleanly."""

from __future__ import annotations

import os

import pytest
import redis.asyncio as aioredis

REDIS_URL = os.environ.get("LNVPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_redis_error: list[str] = []  # filled once the server was found unreachable


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("LNVPS_REQUIRE_MYSQL") == "1":
        pytest.fail(f"LNVPS_REQUIRE_MYSQL=1 but {reason}")
    pytest.skip(reason)


async def connect_redis() -> aioredis.Redis:
    """A client on the test Redis; skips when unreachable (fails if LNVPS_REQUIRE_MYSQL=1)."""
    if _redis_error:
        _skip_or_fail(_redis_error[0])
    # A loaded CI machine can take over a second to accept a local connection; a refused one
    # (no server) still fails at once.
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=15)
    try:
        await client.ping()
    except Exception as error:
        await client.aclose()
        _redis_error.append(f"Redis at {REDIS_URL} unreachable: {error}")
        _skip_or_fail(_redis_error[0])
    return client
