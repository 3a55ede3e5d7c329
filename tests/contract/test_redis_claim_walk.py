"""Redis queue: the walk of the pending list for idle entries carries on across receives."""

from __future__ import annotations

import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.queue.redis_streams import MAX_CLAIM_CALLS, RedisStreamsQueue
from adapters.queue.wire import job_to_json
from ports.jobs import SpawnVm
from tests.redistest import connect_redis

GROUP = "workers"
#: long enough that no entry becomes idle by itself while a test runs; idleness is set
CLAIM_MS = 60_000
#: pending entries XAUTOCLAIM looks at per call, per job asked for (hard-coded in Redis)
SCAN_PER_COUNT = 10


@pytest.fixture
async def redis_stream() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """A client and a unique stream name; the stream (and its groups) is deleted afterwards."""
    client = await connect_redis()
    stream = f"lnvps_t_{secrets.token_hex(6)}"
    try:
        yield client, stream
    finally:
        await client.delete(stream, f"{stream}:failures")
        await client.aclose()


async def _pending(client: aioredis.Redis, stream: str, idle: list[bool]) -> list[str]:
    """Entries handed out and not acked, in order: each idle past the claim time (its
    consumer died) or just claimed by a busy consumer (a job failing transiently, re-claimed
    for ever), as `idle` says; their ids."""
    await client.xgroup_create(stream, GROUP, id="$", mkstream=True)
    ids = [
        _id(await client.xadd(stream, {"job": job_to_json(SpawnVm(vm_id=i + 1))}))
        for i in range(len(idle))
    ]
    await client.xreadgroup(GROUP, "dead", {stream: ">"}, count=len(idle))
    idle_ids: list[Any] = [i for i, is_idle in zip(ids, idle, strict=True) if is_idle]
    busy_ids: list[Any] = [i for i, is_idle in zip(ids, idle, strict=True) if not is_idle]
    if idle_ids:
        await client.xclaim(stream, GROUP, "dead", 0, idle_ids, idle=2 * CLAIM_MS, retrycount=1)
    if busy_ids:
        await client.xclaim(stream, GROUP, "busy", 0, busy_ids, idle=0)
    return ids


def _counting_claims(client: aioredis.Redis) -> list[int]:
    """Count the client's XAUTOCLAIM calls: one item per call (its count)."""
    calls: list[int] = []
    xautoclaim: Callable[..., Awaitable[Any]] = client.xautoclaim

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["count"])
        return await xautoclaim(*args, **kwargs)

    client.xautoclaim = counted  # type: ignore[method-assign]
    return calls


async def _owned(client: aioredis.Redis, stream: str, consumer: str) -> set[str]:
    found = await client.xpending_range(stream, GROUP, "-", "+", 10_000, consumername=consumer)
    return {_id(p["message_id"]) for p in found}


def _id(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.mark.parametrize("max_jobs", [1, 10])
async def test_idle_entries_behind_many_busy_ones_are_reached(
    redis_stream: tuple[aioredis.Redis, str], max_jobs: int
) -> None:
    """Before: every receive walked from `0-0` and only 10 × max_jobs × 10 entries, so the
    worker's one-job receive never got past 100 busy entries to the idle ones behind them
    (a job for a healthy host behind a down host's jobs waited for ever)."""
    client, stream = redis_stream
    n_busy, n_idle = 120, 5
    ids = await _pending(client, stream, [False] * n_busy + [True] * n_idle)
    worker = RedisStreamsQueue(client, consumer="w", stream=stream, claim_idle_ms=CLAIM_MS)
    calls = _counting_claims(client)
    per_receive = SCAN_PER_COUNT * MAX_CLAIM_CALLS * max_jobs
    bound = math.ceil(n_busy / per_receive) + math.ceil(n_idle / max_jobs)
    got: list[str] = []
    for _ in range(bound):
        before = len(calls)
        found = await worker.receive(max_jobs=max_jobs, block_ms=0)
        assert len(calls) - before <= MAX_CLAIM_CALLS
        assert all(d.redelivered and d.deliveries == 2 for d in found)
        got += [d.id for d in found]
    assert got == ids[n_busy:], "idle pending jobs not all claimed within the bound"
    assert set(calls) == {max_jobs}  # XAUTOCLAIM never asked to claim more than handed back
    assert await _owned(client, stream, "w") == set(got)  # nothing claimed and not handed back
    assert await _owned(client, stream, "busy") == set(ids[:n_busy])


async def test_a_receive_finding_nothing_makes_a_bounded_number_of_calls(
    redis_stream: tuple[aioredis.Redis, str],
) -> None:
    client, stream = redis_stream
    ids = await _pending(client, stream, [False] * 200)
    worker = RedisStreamsQueue(client, consumer="w", stream=stream, claim_idle_ms=CLAIM_MS)
    calls = _counting_claims(client)
    for _ in range(5):  # 50 entries a receive: 200 walked in 4 receives, then from the start
        assert await worker.receive(max_jobs=1, block_ms=0) == []
        assert len(calls) == MAX_CLAIM_CALLS
        calls.clear()
    assert await _owned(client, stream, "busy") == set(ids)


async def test_a_short_walk_wraps_to_the_start_once(
    redis_stream: tuple[aioredis.Redis, str],
) -> None:
    """A receive begun mid-list goes on from the start when it reaches the end, so an idle
    entry before the cursor is claimed in the same receive; a walk begun at the start stops
    at the end."""
    client, stream = redis_stream
    first, *_ = ids = await _pending(client, stream, [True, False, False])
    worker = RedisStreamsQueue(client, consumer="w", stream=stream, claim_idle_ms=CLAIM_MS)
    calls = _counting_claims(client)
    [claimed] = await worker.receive(max_jobs=1, block_ms=0)  # the cursor now at ids[1]
    assert claimed.id == first and len(calls) == 1
    await client.xclaim(stream, GROUP, "dead", 0, [first], idle=2 * CLAIM_MS)  # idle again
    [again] = await worker.receive(max_jobs=1, block_ms=0)
    assert again.id == first and len(calls) == 3  # ids[1:] to the end, then from the start
    await worker.ack(again)
    assert await worker.receive(max_jobs=1, block_ms=0) == []  # from ids[1], then the start
    assert len(calls) == 5
    assert await worker.receive(max_jobs=1, block_ms=0) == []  # from the start: to the end
    assert len(calls) == 6
    assert await _owned(client, stream, "busy") == set(ids[1:])
