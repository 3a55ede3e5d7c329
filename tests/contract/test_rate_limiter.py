"""The RateLimiter port over the in-process and the Redis token bucket (D25), on a fake clock."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from adapters.ratelimit.memory import MemoryRateLimiter
from adapters.ratelimit.redis import RedisRateLimiter
from ports.ratelimit import RateLimiter
from tests.redistest import connect_redis


class Seconds:
    """A settable clock in seconds (wall or monotonic, whichever the limiter asks for)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value


Make = Callable[[int, int, Seconds], RateLimiter]


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    if request.param == "memory":
        yield lambda per_minute, burst, clock: MemoryRateLimiter(per_minute, burst, now=clock)
        return
    client = await connect_redis()
    prefix = f"test:ratelimit:{secrets.token_hex(4)}:"
    try:
        yield lambda per_minute, burst, clock: RedisRateLimiter(
            client, per_minute, burst, key_prefix=prefix, now=clock
        )
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_burst_then_refused_until_the_bucket_refills(make: Make) -> None:
    clock = Seconds()
    limiter = make(6, 3, clock)  # one token every 10 s, three at once
    assert [await limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await limiter.acquire("a")
    assert 9.9 <= wait <= 10.0
    assert await limiter.acquire("b") == 0.0  # another client has its own bucket
    clock.value += 5
    assert 4.9 <= await limiter.acquire("a") <= 5.0
    clock.value += 5
    assert await limiter.acquire("a") == 0.0
    assert await limiter.acquire("a") > 0
    clock.value += 3600  # refills to the burst, never beyond
    assert [await limiter.acquire("a") for _ in range(4)][3] > 0


async def test_two_nodes_on_redis_share_one_bucket() -> None:
    client = await connect_redis()
    prefix = f"test:ratelimit:{secrets.token_hex(4)}:"
    clock = Seconds()
    try:
        one = RedisRateLimiter(client, 6, 2, key_prefix=prefix, now=clock)
        two = RedisRateLimiter(client, 6, 2, key_prefix=prefix, now=clock)
        assert await one.acquire("c") == 0.0
        assert await two.acquire("c") == 0.0
        assert await one.acquire("c") > 0 and await two.acquire("c") > 0
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_two_nodes_with_skewed_clocks_share_one_budget() -> None:
    """Review: each node sends its own wall-clock time, and every call stored it as the
    bucket's time, refusals too. A node whose clock lags put the time back; the next call
    on a node ahead then refilled the skew's worth (capped at the burst): a client bouncing
    between the two behind a load balancer had a full burst again after every refused
    request (here unlimited: 60 granted where 2 are due). A bucket's time never goes back
    now: the lagging node refills nothing until its clock passes it, so both together grant
    what one clock (the fastest) allows."""
    client = await connect_redis()
    prefix = f"test:ratelimit:{secrets.token_hex(4)}:"
    ahead, behind = Seconds(1_000_060.0), Seconds(1_000_000.0)  # one minute apart
    try:
        one = RedisRateLimiter(client, 6, 2, key_prefix=prefix, now=ahead)
        two = RedisRateLimiter(client, 6, 2, key_prefix=prefix, now=behind)
        granted = 0
        for _ in range(30):  # no time passes: only the burst is due
            for node in (one, one, two):
                granted += await node.acquire("c") == 0.0
        assert granted == 2
        for clock in (ahead, behind):
            clock.value += 10  # one token's worth, by either clock
        answers = [await one.acquire("c"), await two.acquire("c"), await one.acquire("c")]
        assert answers[0] == 0.0 and answers[2] > 0
        # the lagging node's wait counts its lag: its next token is the bucket's, by its clock
        assert 69.9 <= answers[1] <= 70.0
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_a_redis_outage_lets_requests_through() -> None:
    class Down:
        async def eval(self, *args: object) -> object:
            raise RedisConnectionError("connection refused")

    limiter = RedisRateLimiter(Down(), 1, 1)  # type: ignore[arg-type]
    assert [await limiter.acquire("x") for _ in range(3)] == [0.0, 0.0, 0.0]


async def test_the_memory_limiter_forgets_idle_clients_instead_of_growing() -> None:
    clock = Seconds()
    limiter = MemoryRateLimiter(60, 2, now=clock, max_keys=100)
    for i in range(100):
        await limiter.acquire(f"client-{i}")
    clock.value += 10  # every bucket is full again
    await limiter.acquire("newcomer")
    assert len(limiter._buckets) == 1


async def test_a_wider_bucket_is_passed_too_and_a_refusal_takes_from_none(make: Make) -> None:
    clock = Seconds()
    limiter = make(6, 1, clock)  # a narrow bucket: 1 at once, one every 10 s
    wide = [("net", 3)]  # the wider one: 3 at once, one every 10/3 s
    assert [await limiter.acquire(f"host{i}", wide) for i in range(3)] == [0.0, 0.0, 0.0]
    wait = await limiter.acquire("host3", wide)  # its own bucket is full, the wider one empty
    assert 3.3 <= wait <= 3.34
    assert await limiter.acquire("host0", wide) > 0  # the narrow bucket refuses too
    clock.value += 10 / 3 + 0.01
    assert await limiter.acquire("host3", wide) == 0.0  # the refusal above took nothing
    assert await limiter.acquire("other", [("net2", 3)]) == 0.0
    assert await limiter.acquire("host0") > 0  # without the wider bucket: its own still empty


async def _flood_then_victim(limiter: RateLimiter, clock: Seconds) -> list[float]:
    """A /48 orders until refused; a flood of fresh /64s of another /48 (refused by its /48
    bucket after its 24 tokens); then the first /48 asks again: its answers."""
    victim = "2001:db8:a::/64", [("2001:db8:a::/48", 8)]
    got = [await limiter.acquire(*victim) for _ in range(4)]
    assert got[:3] == [0.0, 0.0, 0.0] and got[3] > 0
    clock.value += 1
    refused = 0
    for i in range(1000):
        wait = await limiter.acquire(f"2001:db8:b:{i:x}::/64", [("2001:db8:b::/48", 8)])
        refused += wait > 0
    assert refused > 900
    return [await limiter.acquire(*victim) for _ in range(2)]


async def test_a_refused_flood_of_new_keys_does_not_reset_another_clients_bucket() -> None:
    """Found by r12: every refused request stored a bucket for its fresh /64, so the flood
    reached `max_keys` and "drop the oldest half" forgot the victim's empty buckets."""
    clock = Seconds()
    limiter = MemoryRateLimiter(1, 3, now=clock, max_keys=1000)  # 3 at once, one a minute
    answers = await _flood_then_victim(limiter, clock)
    assert all(wait > 0 for wait in answers)  # still empty: refused
    assert len(limiter._buckets) == 2 + 24 + 1  # the victim's two, the 24 granted /64s, their /48


async def test_the_redis_limiter_keeps_the_victims_bucket_through_the_flood() -> None:
    client = await connect_redis()
    prefix = f"test:ratelimit:{secrets.token_hex(4)}:"
    clock = Seconds()
    try:
        limiter = RedisRateLimiter(client, 1, 3, key_prefix=prefix, now=clock)
        answers = await _flood_then_victim(limiter, clock)
        assert all(wait > 0 for wait in answers)
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_a_full_table_forgets_full_then_the_fullest_buckets_never_an_empty_one() -> None:
    clock = Seconds()
    limiter = MemoryRateLimiter(60, 4, now=clock, max_keys=10)  # one a second, 4 at once
    for _ in range(4):
        assert await limiter.acquire("drained") == 0.0
    assert await limiter.acquire("drained") > 0
    for i in range(9):  # granted, each one token down: busy, but fuller than "drained"
        assert await limiter.acquire(f"busy-{i}") == 0.0
    for i in range(20):  # new clients keep coming while nothing has refilled
        assert await limiter.acquire(f"new-{i}") == 0.0
        assert len(limiter._buckets) <= 10
        assert await limiter.acquire("drained") > 0  # never forgotten, so never reset
    small = MemoryRateLimiter(60, 4, now=clock, max_keys=3)
    for _ in range(4):
        await small.acquire("drained")
    assert [await small.acquire(k) for k in ("a", "b")] == [0.0, 0.0]
    clock.value += 1  # "a" and "b" full again (the same as none), "drained" at one token
    assert await small.acquire("c") == 0.0
    assert set(small._buckets) == {"drained", "c"}
