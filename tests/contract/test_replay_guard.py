"""ReplayGuard contract (D26) over the in-process guard and Redis: once per key, atomically."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from adapters.cache.redis_replay import RedisReplayGuard
from adapters.http.replay import InProcessReplayGuard, ReplayGuardFull
from ports.replay import ReplayGuard, ReplayGuardUnavailable
from tests.redistest import connect_redis

NOW = datetime(2026, 6, 17, 10, 0, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(seconds=601)


@pytest.fixture(params=["memory", "redis"])
async def guard(request: pytest.FixtureRequest) -> AsyncIterator[ReplayGuard]:
    if request.param == "memory":
        yield InProcessReplayGuard()
        return
    client = await connect_redis()
    prefix = f"lnvps_test_nip98_{secrets.token_hex(4)}:"
    try:
        yield RedisReplayGuard(client, key_prefix=prefix)
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def event_id() -> bytes:
    return secrets.token_bytes(32)


async def test_a_key_is_good_once(guard: ReplayGuard) -> None:
    key, other = event_id(), event_id()
    assert await guard.first_use(key, NOW, UNTIL) is True
    assert await guard.first_use(key, NOW + timedelta(seconds=600), UNTIL) is False
    assert await guard.first_use(other, NOW, UNTIL) is True


async def test_concurrent_uses_of_one_key_admit_exactly_one(guard: ReplayGuard) -> None:
    key = event_id()
    results = await asyncio.gather(*[guard.first_use(key, NOW, UNTIL) for _ in range(20)])
    assert sorted(results) == [False] * 19 + [True]


async def test_redis_keys_expire_with_the_event_window() -> None:
    client = await connect_redis()
    prefix = f"lnvps_test_nip98_{secrets.token_hex(4)}:"
    try:
        key = event_id()
        assert await RedisReplayGuard(client, key_prefix=prefix).first_use(key, NOW, UNTIL)
        ttl = await client.ttl(f"{prefix}{key.hex()}")
        assert 590 <= ttl <= 601
    finally:
        await client.delete(f"{prefix}{key.hex()}")
        await client.aclose()


async def test_an_unreachable_redis_refuses_rather_than_admits() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        with pytest.raises(ReplayGuardUnavailable):
            await RedisReplayGuard(client).first_use(event_id(), NOW, UNTIL)
    finally:
        await client.aclose()


async def test_in_process_keys_are_forgotten_once_expired() -> None:
    guard = InProcessReplayGuard()
    key = event_id()
    assert await guard.first_use(key, NOW, UNTIL)
    assert not await guard.first_use(key, UNTIL - timedelta(seconds=1), UNTIL)
    assert await guard.first_use(event_id(), UNTIL, UNTIL + timedelta(seconds=1))
    assert len(guard) == 1  # the expired key was pruned
    assert await guard.first_use(key, UNTIL, UNTIL + timedelta(seconds=601))


async def test_a_full_in_process_guard_refuses_rather_than_forgets() -> None:
    guard = InProcessReplayGuard(capacity=3)
    keys = [event_id() for _ in range(3)]
    for i, key in enumerate(keys):
        assert await guard.first_use(key, NOW, UNTIL + timedelta(seconds=i))
    with pytest.raises(ReplayGuardFull):
        await guard.first_use(event_id(), NOW, UNTIL)
    assert len(guard) == 3
    for key in keys:  # every live id is still remembered: none can be replayed
        assert not await guard.first_use(key, NOW + timedelta(seconds=1), UNTIL)
    # once the soonest expires its place is free again
    assert await guard.first_use(event_id(), UNTIL, UNTIL + timedelta(seconds=60))
    assert not await guard.first_use(keys[2], UNTIL, UNTIL)
