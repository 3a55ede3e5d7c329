"""ReplayGuard contract (D26) over the in-process guard and Redis: once per key, atomically."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from adapters.cache.redis_replay import CLOCK_MARGIN, RedisReplayGuard
from adapters.http.client_limit import WIDE_V6_SCALE
from adapters.http.replay import InProcessReplayGuard, ReplayGuardFull, ReplayShares
from ports.replay import ReplayGuard, ReplayGuardUnavailable, ReplayShareExceeded
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
        assert 590 + CLOCK_MARGIN <= ttl <= 601 + CLOCK_MARGIN
    finally:
        await client.delete(f"{prefix}{key.hex()}")
        await client.aclose()


async def test_an_event_recorded_by_a_node_ahead_is_not_replayed_on_one_behind() -> None:
    """Review: the key's TTL was the event's window left by the recording node's clock. A
    node 30 s ahead recorded an event with 1 s of its window left, so Redis dropped the key
    after 1 s, while a node on time still had 31 s of that window: the same signed request
    (a renewal paid from credit, say) was good again there. Keys live `CLOCK_MARGIN` longer
    than the recording node's window: nodes up to that far apart never see one twice."""
    client = await connect_redis()
    prefix = f"lnvps_test_nip98_{secrets.token_hex(4)}:"
    until = NOW + timedelta(seconds=31)  # the event's window ends 31 s from now (on time)
    ahead = RedisReplayGuard(client, key_prefix=prefix)
    on_time = RedisReplayGuard(client, key_prefix=prefix)
    key = event_id()
    try:
        assert await ahead.first_use(key, NOW + timedelta(seconds=30), until)
        await asyncio.sleep(1.2)  # the ahead node's second of window is over
        assert not await on_time.first_use(key, NOW + timedelta(seconds=1.2), until)
        ttl = await client.ttl(f"{prefix}{key.hex()}")
        assert CLOCK_MARGIN - 2 <= ttl <= CLOCK_MARGIN + 1
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


# --- each client's share of the in-process guard ---------------------------------------------


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


async def test_an_owner_over_its_share_is_refused_while_others_go_on() -> None:
    guard = InProcessReplayGuard(capacity=10)
    mine = [("net:203.0.113.7", 3)]
    for i in range(3):
        assert await guard.first_use(event_id(), NOW, at(600 + i), mine)
    refused = event_id()
    with pytest.raises(ReplayShareExceeded) as info:
        await guard.first_use(refused, at(100), at(700), mine)
    assert info.value.retry_after == 500  # until the owner's soonest id expires
    assert (len(guard), guard.held_by("net:203.0.113.7")) == (3, 3)  # nothing recorded
    assert await guard.first_use(event_id(), at(100), at(700), [("net:198.51.100.9", 3)])
    assert await guard.first_use(event_id(), at(100), at(700))  # no owner: only the capacity
    # the refused id was not remembered: once the share frees, it is good (once)
    assert await guard.first_use(refused, at(600), at(700), mine)
    assert not await guard.first_use(refused, at(601), at(700), mine)


async def test_an_id_is_charged_to_every_owner_and_any_full_share_refuses() -> None:
    guard = InProcessReplayGuard(capacity=10)
    for key in ("key:a", "key:b"):
        assert await guard.first_use(event_id(), NOW, UNTIL, [(key, 5), ("net:1", 2)])
    with pytest.raises(ReplayShareExceeded):  # a fresh key, the same address
        await guard.first_use(event_id(), NOW, UNTIL, [("key:c", 5), ("net:1", 2)])
    assert await guard.first_use(event_id(), NOW, UNTIL, [("key:a", 5), ("net:2", 2)])
    assert (guard.held_by("key:a"), guard.held_by("key:c"), guard.held_by("net:1")) == (2, 0, 2)


async def test_a_replay_is_refused_as_a_replay_even_from_an_owner_at_its_share() -> None:
    guard = InProcessReplayGuard(capacity=10)
    mine = [("key:a", 1)]
    key = event_id()
    assert await guard.first_use(key, NOW, UNTIL, mine)
    assert await guard.first_use(key, at(1), UNTIL, mine) is False
    assert await guard.first_use(key, at(1), UNTIL, [("key:other", 1)]) is False


async def test_shares_never_forget_a_live_id_and_free_as_ids_expire() -> None:
    guard = InProcessReplayGuard(capacity=10)
    mine = [("key:a", 2)]
    soon, late = event_id(), event_id()
    assert await guard.first_use(late, NOW, at(900), mine)
    assert await guard.first_use(soon, NOW, at(300), mine)
    with pytest.raises(ReplayShareExceeded) as info:
        await guard.first_use(event_id(), at(299), at(900), mine)
    assert info.value.retry_after == 1
    assert await guard.first_use(event_id(), at(300), at(900), mine)  # `soon` left
    assert guard.held_by("key:a") == 2
    assert await guard.first_use(late, at(899), at(900), mine) is False  # still remembered
    assert await guard.first_use(soon, at(899), at(900))  # forgotten, so new again


async def test_owners_are_forgotten_with_their_last_id() -> None:
    guard = InProcessReplayGuard(capacity=100)
    for i in range(50):
        shares = [(f"key:{i}", 1), (f"net:{i % 7}", 10)]
        assert await guard.first_use(event_id(), NOW, at(600 + i), shares)
    assert (len(guard), guard.owners()) == (50, 57)
    assert await guard.first_use(event_id(), at(625), at(1300))
    assert (len(guard), guard.owners()) == (25, 31)
    assert await guard.first_use(event_id(), at(650), at(1300))
    assert (len(guard), guard.owners()) == (2, 0)  # memory follows the live ids


async def test_a_full_guard_is_503_with_retry_after_once_no_owner_is_over_its_share() -> None:
    guard = InProcessReplayGuard(capacity=2)
    assert await guard.first_use(event_id(), NOW, at(60), [("net:1", 5)])
    assert await guard.first_use(event_id(), NOW, at(90), [("net:2", 5)])
    with pytest.raises(ReplayGuardFull) as info:
        await guard.first_use(event_id(), at(20), at(600), [("net:3", 5)])
    assert info.value.retry_after == 40


def test_an_id_is_charged_to_its_key_and_each_client_network() -> None:
    shares = ReplayShares(per_key=5, per_address=10)
    assert shares.of(b"\x01" * 32, ("203.0.113.7",)) == (
        ("key:" + "01" * 32, 5),
        ("net:203.0.113.7", 10),
    )
    v6 = shares.of(b"\x02" * 32, ("2001:db8:0:1::/64", "2001:db8::/48"))
    assert v6[1:] == (("net:2001:db8:0:1::/64", 10), ("net:2001:db8::/48", 10 * WIDE_V6_SCALE))
