"""WorkQueue contract over the in-process queue and Redis Streams, and the jobs' JSON form."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from adapters.queue.memory import InProcessQueue
from adapters.queue.redis_streams import RedisStreamsQueue
from adapters.queue.wire import job_from_json, job_to_json
from domain.upgrade import UpgradeConfig
from ports.jobs import (
    JOB_KINDS,
    JOB_TYPES,
    SKIPPABLE_KINDS,
    CheckVm,
    CheckVms,
    DownloadOsImages,
    InvalidJob,
    SpawnVm,
    StartVm,
)
from ports.queue import Delivery, Job, WorkQueue
from tests.redistest import connect_redis

CLAIM_MS = 100
PAST_CLAIM_S = CLAIM_MS / 1000 * 1.5
#: the Redis queues' maxlen: far below the jobs some tests queue
SMALL_MAXLEN = 5
#: more jobs than a stream node holds (`stream-node-max-entries`, 100 by default), so an
#: approximate trim of the stream could drop a whole node of them
BACKLOG = 250

Consumers = Callable[[str], WorkQueue]


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


@pytest.fixture(params=["memory", "redis"])
async def consumers(request: pytest.FixtureRequest) -> AsyncIterator[Consumers]:
    """`consumers(name)`: a consumer of one shared queue (the same object in process)."""
    if request.param == "memory":
        shared = InProcessQueue(claim_idle_ms=CLAIM_MS)
        yield lambda _name: shared
        return
    client = await connect_redis()
    stream = f"lnvps_t_{secrets.token_hex(6)}"

    def consumer(name: str) -> WorkQueue:
        return RedisStreamsQueue(
            client, consumer=name, stream=stream, claim_idle_ms=CLAIM_MS, maxlen=SMALL_MAXLEN
        )

    try:
        yield consumer
    finally:
        await client.delete(stream, f"{stream}:failures")
        await client.aclose()


def check_vm(vm_id: int) -> Job:
    return CheckVm(vm_id=vm_id)


def spawn_vm(vm_id: int) -> Job:
    return SpawnVm(vm_id=vm_id)


# --- the contract -------------------------------------------------------------------------


async def test_fifo_order(consumers: Consumers) -> None:
    queue = consumers("a")
    jobs = [spawn_vm(i) for i in range(1, 6)]
    ids = [await queue.send(job) for job in jobs]
    got = await queue.receive(max_jobs=10, block_ms=50)
    assert [d.job for d in got] == jobs
    assert [d.id for d in got] == ids
    assert not any(d.redelivered for d in got)


async def test_receive_respects_max_jobs(consumers: Consumers) -> None:
    queue = consumers("a")
    for i in range(3):
        await queue.send(check_vm(i))
    assert [d.job for d in await queue.receive(max_jobs=2)] == [check_vm(0), check_vm(1)]
    assert [d.job for d in await queue.receive(max_jobs=10)] == [check_vm(2)]


async def test_empty_receive_waits_at_most_block_ms(consumers: Consumers) -> None:
    queue = consumers("a")
    started = time.monotonic()
    assert await queue.receive(block_ms=50) == []
    assert await queue.receive(block_ms=0) == []
    assert time.monotonic() - started < 1


async def test_blocked_receive_wakes_for_a_new_job(consumers: Consumers) -> None:
    queue = consumers("a")
    await queue.receive(block_ms=0)  # the Redis group exists before the blocking read
    waiting = asyncio.create_task(queue.receive(block_ms=5000))
    await asyncio.sleep(0.02)
    await queue.send(spawn_vm(9))
    got = await asyncio.wait_for(waiting, timeout=2)
    assert [d.job for d in got] == [spawn_vm(9)]


async def test_ack_removes(consumers: Consumers) -> None:
    queue = consumers("a")
    await queue.send(spawn_vm(1))
    [delivery] = await queue.receive()
    await queue.ack(delivery)
    await asyncio.sleep(PAST_CLAIM_S)
    assert await queue.receive(block_ms=10) == []


async def test_crashed_consumers_job_goes_to_another_after_idle_time(
    consumers: Consumers,
) -> None:
    crashed, survivor = consumers("crashed"), consumers("survivor")
    await survivor.receive(block_ms=0)
    await crashed.send(spawn_vm(1))
    [lost] = await crashed.receive()  # …and the consumer dies without acking
    assert await survivor.receive(block_ms=10) == []  # not idle long enough yet
    await asyncio.sleep(PAST_CLAIM_S)
    [again] = await survivor.receive(block_ms=10)
    assert again.job == lost.job and again.id == lost.id and again.redelivered
    await survivor.ack(again)
    await asyncio.sleep(PAST_CLAIM_S)
    assert await survivor.receive(block_ms=10) == []
    assert await crashed.receive(block_ms=10) == []


async def test_a_kept_delivery_stays_with_its_consumer_past_the_claim_idle_time(
    consumers: Consumers,
) -> None:
    """Before: a job still running after the claim idle time was claimed and run by a
    second consumer (no heartbeat); a consumer now keeps what it runs. Keeps count no
    delivery; once they stop (the consumer died) the delivery goes to another."""
    running, other = consumers("running"), consumers("other")
    await other.receive(block_ms=0)
    await running.send(spawn_vm(1))
    [held] = await running.receive()
    for _ in range(4):  # 4 × (a half claim idle time + a receive): well past it
        await asyncio.sleep(CLAIM_MS / 1000 / 2)
        assert await running.keep(held) is True
        assert await other.receive(block_ms=10) == []
    await asyncio.sleep(PAST_CLAIM_S)
    [again] = await other.receive(block_ms=10)
    assert again.id == held.id and again.redelivered
    assert again.deliveries == 2 and again.crashed == 1


async def test_keep_is_refused_once_the_delivery_is_acked_or_claimed_by_another(
    consumers: Consumers,
) -> None:
    """A consumer that let the claim idle time pass does not take its delivery back from the
    consumer that claimed it (in process every consumer is the one queue: it still holds)."""
    slow, fast = consumers("slow"), consumers("fast")
    await fast.receive(block_ms=0)
    await slow.send(spawn_vm(1))
    [held] = await slow.receive()
    await asyncio.sleep(PAST_CLAIM_S)
    [claimed] = await fast.receive(block_ms=10)
    assert await slow.keep(held) is (slow is fast)
    assert await fast.keep(claimed) is True
    assert await fast.ack(claimed) is True
    assert await fast.keep(claimed) is False
    assert await slow.keep(held) is False
    await asyncio.sleep(PAST_CLAIM_S)
    assert await slow.receive(block_ms=10) == []


async def test_skippable_failure_is_dropped(consumers: Consumers) -> None:
    queue = consumers("a")
    await queue.send(CheckVms())
    [delivery] = await queue.receive()
    assert delivery.job.skippable
    await queue.fail(delivery)
    await asyncio.sleep(PAST_CLAIM_S)
    assert await queue.receive(block_ms=10) == []


async def test_non_skippable_failure_comes_back(consumers: Consumers) -> None:
    queue = consumers("a")
    await queue.send(spawn_vm(3))
    [delivery] = await queue.receive()
    assert not delivery.job.skippable
    await queue.fail(delivery)
    await asyncio.sleep(PAST_CLAIM_S)
    [again] = await queue.receive(block_ms=10)
    assert again.job == spawn_vm(3) and again.redelivered
    await queue.fail(again)  # still failing: back once more
    await asyncio.sleep(PAST_CLAIM_S)
    [third] = await queue.receive(block_ms=10)
    await queue.ack(third)
    await asyncio.sleep(PAST_CLAIM_S)
    assert await queue.receive(block_ms=10) == []


async def test_counted_failures_come_back_with_the_job(consumers: Consumers) -> None:
    """Each counted failure raises the next delivery's `failures`; an uncounted (transient)
    one does not; another consumer sees the same count; ack forgets it."""
    queue, other = consumers("a"), consumers("b")
    await queue.send(spawn_vm(4))
    [delivery] = await queue.receive()
    assert delivery.failures == 0
    seen = []
    for counted, receiver in ((True, queue), (False, other), (True, other), (True, queue)):
        await receiver.fail(delivery, counted=counted)
        await asyncio.sleep(PAST_CLAIM_S)
        [delivery] = await receiver.receive(block_ms=10)
        assert delivery.job == spawn_vm(4) and delivery.redelivered
        seen.append(delivery.failures)
    assert seen == [1, 1, 2, 3]
    await queue.ack(delivery)
    await queue.send(spawn_vm(5))
    [fresh] = await queue.receive()
    assert fresh.failures == 0
    await asyncio.sleep(PAST_CLAIM_S)
    [fresh_again] = await queue.receive(block_ms=10)
    assert fresh_again.id == fresh.id and fresh_again.failures == 0


async def test_ack_then_sends_the_follow_up_only_when_it_took_the_job_off(
    consumers: Consumers,
) -> None:
    """Two consumers hold the same delivery (the slow one past the claim idle time): the
    one whose ack takes it off sends its follow-up, the other's ack sends nothing."""
    slow, fast = consumers("slow"), consumers("fast")
    await slow.send(spawn_vm(1))
    [held] = await slow.receive()
    await asyncio.sleep(PAST_CLAIM_S)
    [claimed] = await fast.receive(block_ms=10)
    assert claimed.id == held.id
    assert await fast.ack(claimed, then=check_vm(1)) is True
    assert await slow.ack(held, then=check_vm(2)) is False
    got = await fast.receive(max_jobs=10, block_ms=10)
    assert [d.job for d in got] == [check_vm(1)] and not got[0].redelivered
    await fast.ack(got[0])
    await asyncio.sleep(PAST_CLAIM_S)
    assert await slow.receive(max_jobs=10, block_ms=10) == []


async def test_two_consumers_never_get_the_same_job(consumers: Consumers) -> None:
    jobs = [spawn_vm(i) for i in range(40)]
    a, b = consumers("a"), consumers("b")
    await a.receive(block_ms=0)
    for job in jobs:
        await a.send(job)
    seen: dict[str, list[Delivery]] = {"a": [], "b": []}

    async def work(name: str, queue: WorkQueue) -> None:
        while len(seen["a"]) + len(seen["b"]) < len(jobs):
            for delivery in await queue.receive(max_jobs=3, block_ms=20):
                seen[name].append(delivery)
                await asyncio.sleep(0)  # let the other consumer in between jobs
                await queue.ack(delivery)

    await asyncio.wait_for(asyncio.gather(work("a", a), work("b", b)), timeout=5)
    ids_a, ids_b = {d.id for d in seen["a"]}, {d.id for d in seen["b"]}
    assert not ids_a & ids_b
    assert len(seen["a"]) + len(seen["b"]) == len(jobs)
    assert sorted(cast(SpawnVm, d.job).vm_id for d in seen["a"] + seen["b"]) == list(range(40))


async def _receive_all(queue: WorkQueue, count: int) -> list[Delivery]:
    """Receive until `count` deliveries came, or a receive returns none."""
    got: list[Delivery] = []
    while len(got) < count:
        more = await queue.receive(max_jobs=count - len(got), block_ms=10)
        if not more:
            break
        got += more
    return got


async def test_a_backlog_beyond_maxlen_is_all_delivered(consumers: Consumers) -> None:
    """Before: every send trimmed the Redis stream to about maxlen entries, whatever their
    state, so jobs queued while no worker read (a backlog, a burst) were deleted unread."""
    queue = consumers("a")
    await queue.receive(block_ms=0)  # the Redis group exists before the backlog
    jobs = [spawn_vm(i) for i in range(BACKLOG)]
    for job in jobs:
        await queue.send(job)
    got = await _receive_all(queue, BACKLOG)
    assert [d.job for d in got] == jobs
    for delivery in got:
        assert await queue.ack(delivery)
    assert await queue.receive(block_ms=10) == []


async def test_pending_jobs_beyond_maxlen_stay_claimable_and_ackable(
    consumers: Consumers,
) -> None:
    """Before: the sends after a consumer read a backlog (and died) trimmed its pending
    entries away, and the claim dropped them as deleted: never run."""
    dead, survivor = consumers("dead"), consumers("survivor")
    await survivor.receive(block_ms=0)
    for i in range(BACKLOG):
        await dead.send(spawn_vm(i))
    held = await _receive_all(dead, BACKLOG)  # …and the consumer dies without acking
    assert [d.job for d in held] == [spawn_vm(i) for i in range(BACKLOG)]
    later = [check_vm(i) for i in range(BACKLOG)]
    for job in later:
        await survivor.send(job)
    await asyncio.sleep(PAST_CLAIM_S)
    got: list[Delivery] = []
    while len(got) < 2 * BACKLOG and (more := await survivor.receive(block_ms=10)):
        for delivery in more:  # acks, each of which may trim, the others still pending
            assert await survivor.ack(delivery)
        got += more
    assert sorted((d.id, d.job) for d in got if d.redelivered) == sorted(
        (d.id, d.job) for d in held
    )
    assert [d.job for d in got if not d.redelivered] == later
    await asyncio.sleep(PAST_CLAIM_S)
    assert await survivor.receive(block_ms=10) == []


async def test_ack_then_keeps_the_jobs_waiting_beyond_maxlen(consumers: Consumers) -> None:
    """Before: the follow-up of `ack(then=...)` was added with the same trim as a send."""
    queue = consumers("a")
    await queue.receive(block_ms=0)
    for i in range(BACKLOG):
        await queue.send(spawn_vm(i))
    [first] = await queue.receive(max_jobs=1)
    assert await queue.ack(first, then=check_vm(0))
    got = await _receive_all(queue, BACKLOG)
    assert [d.job for d in got] == [spawn_vm(i) for i in range(1, BACKLOG)] + [check_vm(0)]


@pytest.mark.parametrize("max_jobs, block_ms", [(0, 10), (1, -1)])
async def test_bad_receive_arguments(consumers: Consumers, max_jobs: int, block_ms: int) -> None:
    with pytest.raises(ValueError):
        await consumers("a").receive(max_jobs=max_jobs, block_ms=block_ms)


# --- Redis specifics ----------------------------------------------------------------------


async def test_redis_entries_are_the_reference_form(
    redis_stream: tuple[aioredis.Redis, str],
) -> None:
    client, stream = redis_stream
    queue = RedisStreamsQueue(client, consumer="api-worker", stream=stream)
    await queue.send(check_vm(5))
    entries: Any = await client.xrange(stream)
    [(_, fields)] = entries
    assert fields == {b"job": b'{"CheckVm":{"vm_id":5}}'}
    groups = await client.xinfo_groups(stream)
    assert [g["name"] for g in groups] == [b"workers"]
    # a job written by the reference's sender is read as well
    await client.xadd(stream, {"job": '{"SpawnVm":{"vm_id":8}}'})
    assert [d.job for d in await queue.receive()] == [check_vm(5), spawn_vm(8)]


async def test_redis_drops_entries_that_are_not_jobs(
    redis_stream: tuple[aioredis.Redis, str],
) -> None:
    client, stream = redis_stream
    queue = RedisStreamsQueue(client, consumer="w", stream=stream, claim_idle_ms=CLAIM_MS)
    await queue.receive(block_ms=0)
    await client.xadd(stream, {"job": "garbage"})
    await client.xadd(stream, {"other": "field"})
    await client.xadd(stream, {"job": '{"SpawnVm":{"vm_id":"seven"}}'})  # a field of wrong type
    await client.xadd(stream, {"job": '{"ProcessVmUpgrade":{"vm_id":1,"config":"not json"}}'})
    await queue.send(spawn_vm(1))
    [delivery] = await queue.receive()
    assert delivery.job == spawn_vm(1)
    pending = await client.xpending(stream, "workers")
    assert pending["pending"] == 1  # the four bad entries were acked
    await queue.ack(delivery)
    assert (await client.xpending(stream, "workers"))["pending"] == 0


async def test_redis_counts_failures_in_a_hash_that_ack_clears(
    redis_stream: tuple[aioredis.Redis, str],
) -> None:
    client, stream = redis_stream
    queue = RedisStreamsQueue(client, consumer="w", stream=stream, claim_idle_ms=CLAIM_MS)
    await queue.send(spawn_vm(1))
    [delivery] = await queue.receive()
    await queue.fail(delivery)
    await queue.fail(delivery, counted=False)
    assert queue.failures_key == f"{stream}:failures"
    assert await client.hgetall(queue.failures_key) == {
        delivery.id.encode(): b"1",
        f"{delivery.id}:passing".encode(): b"1",
    }
    await asyncio.sleep(PAST_CLAIM_S)
    [again] = await queue.receive(block_ms=10)
    assert (again.failures, again.passing, again.deliveries, again.crashed) == (1, 1, 2, 0)
    await queue.ack(again)
    assert await client.exists(queue.failures_key) == 0


async def test_redis_keeps_no_failure_field_of_an_entry_acked_by_another_consumer(
    redis_stream: tuple[aioredis.Redis, str],
) -> None:
    """Before: a slow consumer failing a job that another consumer had claimed and acked
    meanwhile wrote fields that no ack would ever remove."""
    client, stream = redis_stream
    slow, fast = (
        RedisStreamsQueue(client, consumer=name, stream=stream, claim_idle_ms=CLAIM_MS)
        for name in ("slow", "fast")
    )
    await slow.send(spawn_vm(1))
    [held] = await slow.receive()
    await slow.fail(held)  # pending still: counted
    assert await client.hgetall(slow.failures_key) == {held.id.encode(): b"1"}
    await asyncio.sleep(PAST_CLAIM_S)
    [claimed] = await fast.receive(block_ms=10)
    assert claimed.failures == 1
    assert await fast.ack(claimed)
    await slow.fail(held)
    await slow.fail(held, counted=False)
    assert await client.exists(slow.failures_key) == 0


async def test_redis_forgets_the_failures_of_an_entry_deleted_while_pending(
    redis_stream: tuple[aioredis.Redis, str],
) -> None:
    """An entry trimmed away (here deleted) while pending is dropped from the pending list by
    the next claim, and its failure fields with it."""
    client, stream = redis_stream
    queue = RedisStreamsQueue(client, consumer="w", stream=stream, claim_idle_ms=CLAIM_MS)
    await queue.send(spawn_vm(1))
    await queue.send(spawn_vm(2))
    gone, kept = await queue.receive()
    for delivery in (gone, kept):
        await queue.fail(delivery)
        await queue.fail(delivery, counted=False)
    await client.xdel(stream, gone.id)
    await asyncio.sleep(PAST_CLAIM_S)
    [again] = await queue.receive(block_ms=10)
    assert again.id == kept.id and again.failures == 1
    assert set(await client.hkeys(queue.failures_key)) == {
        kept.id.encode(),
        f"{kept.id}:passing".encode(),
    }


async def _node_entries(client: aioredis.Redis) -> int:
    """The most entries a stream node holds: an approximate trim keeps up to that many more."""
    config: Any = await client.config_get("stream-node-max-entries")
    return int(config["stream-node-max-entries"])


async def test_redis_trims_acked_entries_so_the_stream_stays_bounded(
    redis_stream: tuple[aioredis.Redis, str],
) -> None:
    client, stream = redis_stream
    queue = RedisStreamsQueue(client, consumer="w", stream=stream, maxlen=10)
    for i in range(300):
        await queue.send(check_vm(i))
    assert await client.xlen(stream) == 300  # a send trims nothing
    for delivery in await queue.receive(max_jobs=300):
        await queue.ack(delivery)
    assert await client.xlen(stream) <= max(10, await _node_entries(client))


async def test_redis_trims_nothing_another_group_still_needs(
    redis_stream: tuple[aioredis.Redis, str],
) -> None:
    """A second group reading the same stream: the entries it has not read yet, and those it
    read and has not acked, outlive the first group's acks."""
    client, stream = redis_stream
    queue = RedisStreamsQueue(client, consumer="w", stream=stream, maxlen=SMALL_MAXLEN)
    await queue.receive(block_ms=0)
    await client.xgroup_create(stream, "others", id="0")
    for i in range(300):
        await queue.send(check_vm(i))
    others: Any = await client.xreadgroup("others", "o", {stream: ">"}, count=100)
    [(_, read)] = others
    for delivery in await queue.receive(max_jobs=300):
        await queue.ack(delivery)
    assert await client.xlen(stream) == 300  # the others' 100 are pending, 200 unread
    await client.xack(stream, "others", *[entry_id for entry_id, _ in read])
    await queue.send(check_vm(300))
    [last] = await queue.receive()
    await queue.ack(last)  # the others now need only their 200 unread
    assert await client.xlen(stream) < 301
    unread: Any = await client.xreadgroup("others", "o", {stream: ">"}, count=1000)
    [(_, rest)] = unread
    assert [json.loads(fields[b"job"]) for _, fields in rest] == [
        {"CheckVm": {"vm_id": i}} for i in range(100, 301)
    ]


async def test_redis_compares_entry_ids_as_numbers_when_trimming(
    redis_stream: tuple[aioredis.Redis, str],
) -> None:
    """The oldest pending entry, 1-9, comes before the first unread one, 1-151 (as text it
    would not): the stream node holding 1-9 is kept until 1-9 is acked."""
    client, stream = redis_stream
    queue = RedisStreamsQueue(client, consumer="w", stream=stream, maxlen=SMALL_MAXLEN)
    await queue.receive(block_ms=0)
    for seq in range(1, 201):
        await client.xadd(stream, {"job": job_to_json(spawn_vm(seq))}, id=f"1-{seq}")
    got = await queue.receive(max_jobs=150)
    [held] = [d for d in got if d.id == "1-9"]
    for delivery in got:
        if delivery is not held:
            await queue.ack(delivery)
    assert await client.xlen(stream) == 200
    assert await queue.ack(held)
    assert await client.xlen(stream) < 200
    rest = await queue.receive(max_jobs=100)
    assert [d.job for d in rest] == [spawn_vm(seq) for seq in range(151, 201)]


async def test_redis_recreates_a_deleted_stream(redis_stream: tuple[aioredis.Redis, str]) -> None:
    client, stream = redis_stream
    queue = RedisStreamsQueue(client, consumer="w", stream=stream)
    await queue.send(spawn_vm(1))
    await client.delete(stream)
    assert await queue.receive(block_ms=0) == []  # NOGROUP → group (and stream) made again
    await queue.send(spawn_vm(2))
    assert [d.job for d in await queue.receive()] == [spawn_vm(2)]


async def test_redis_group_made_again_reads_the_jobs_sent_since_the_stream_was_lost(
    redis_stream: tuple[aioredis.Redis, str],
) -> None:
    """Redis lost the stream (restarted without persistence) while the API process still
    thinks the group exists: its next send's XADD makes the stream again without the group.
    The worker, finding NOGROUP, makes the group again and still gets that job."""
    client, stream = redis_stream
    worker = RedisStreamsQueue(client, consumer="w", stream=stream)
    api = RedisStreamsQueue(client, consumer="api", stream=stream)
    await api.send(spawn_vm(1))
    [first] = await worker.receive()
    assert await worker.ack(first)
    await client.delete(stream)
    await api.send(spawn_vm(2))  # the paid VM's job, into a stream without the group
    await api.send(spawn_vm(3))
    assert [d.job for d in await worker.receive(block_ms=0)] == [spawn_vm(2), spawn_vm(3)]


async def test_redis_new_worker_reads_the_jobs_queued_before_its_group_existed(
    redis_stream: tuple[aioredis.Redis, str],
) -> None:
    """The same loss, and the worker restarted too: its first receive makes the group, and
    the jobs already in the stream are delivered, not skipped."""
    client, stream = redis_stream
    api = RedisStreamsQueue(client, consumer="api", stream=stream)
    await api.send(spawn_vm(1))
    await client.delete(stream)
    await api.send(spawn_vm(2))
    assert await client.xinfo_groups(stream) == []
    restarted = RedisStreamsQueue(client, consumer="w", stream=stream)
    assert [d.job for d in await restarted.receive(block_ms=0)] == [spawn_vm(2)]


# --- jobs and their JSON ------------------------------------------------------------------

#: one example of every job kind the reference lists, with its fields (lifecycle.md §9.1)
EXAMPLES: dict[str, dict[str, Any]] = {
    "PatchHosts": {},
    "CheckVms": {},
    "CheckNostrDomains": {},
    "CheckSubscriptions": {},
    "CheckVm": {"vm_id": 1},
    "SpawnVm": {"vm_id": 2},
    "SendNotification": {"user_id": 3, "message": "Ünïcode ✓", "title": None},
    "SendAdminNotification": {"message": "m", "title": "[VM1] Deleted by Admin"},
    "BulkMessage": {"subject": "s", "message": "m", "admin_user_id": 4},
    "DeleteVm": {"vm_id": 5, "reason": None, "admin_user_id": 6},
    "StartVm": {"vm_id": 7, "admin_user_id": None},
    "StopVm": {"vm_id": 8, "admin_user_id": 9},
    "ProcessVmUpgrade": {
        "vm_id": 10,
        "config": {"new_cpu": 4, "new_memory": None, "new_disk": 85899345920},
    },
    "ConfigureVm": {"vm_id": 11, "admin_user_id": None},
    "AssignVmIp": {"vm_id": 12, "ip_range_id": 1, "ip": "10.0.0.5", "admin_user_id": 1},
    "UnassignVmIp": {"assignment_id": 13, "admin_user_id": None},
    "UpdateVmIp": {"assignment_id": 14, "admin_user_id": 2},
    "ProcessVmRefund": {
        "vm_id": 15,
        "admin_user_id": 1,
        "refund_from_date": "2026-01-01T00:00:00Z",
        "reason": None,
        "payment_method": "lightning",
        "lightning_invoice": "lnbc1...",
    },
    "CreateVm": {
        "user_id": 16,
        "template_id": 1,
        "image_id": 2,
        "ssh_key_id": 3,
        "ref_code": None,
        "admin_user_id": 1,
        "reason": "support",
    },
    "SendEmailVerification": {"user_id": 17, "verify_url": "https://x/verify?t=1"},
    "DownloadOsImages": {"image_id": None},
}


def _example(kind: str) -> Job:
    """The example of `kind` as a typed job (its config parsed, as the queue adapter does)."""
    fields = dict(EXAMPLES[kind])
    if "config" in fields:
        fields["config"] = UpgradeConfig.from_json(fields["config"])
    return JOB_TYPES[kind](**fields)


def test_examples_cover_every_kind() -> None:
    assert set(EXAMPLES) == JOB_KINDS


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_json_round_trip(kind: str) -> None:
    job = _example(kind)
    assert job.kind == kind
    text = job_to_json(job)
    assert job_from_json(text) == job
    assert job_from_json(text.encode()) == job
    expected: Any = kind if not EXAMPLES[kind] else {kind: EXAMPLES[kind]}
    assert json.loads(text) == expected


def test_json_is_serde_compact() -> None:
    assert job_to_json(CheckVms()) == '"CheckVms"'
    assert job_to_json(check_vm(7)) == '{"CheckVm":{"vm_id":7}}'
    assert job_to_json(DownloadOsImages(image_id=None)) == '{"DownloadOsImages":{"image_id":null}}'
    assert job_from_json('{"CheckVms":null}') == CheckVms()


def test_serde_defaults_missing_options_and_ignores_unknown_fields() -> None:
    assert job_from_json('{"StartVm":{"vm_id":3,"extra":true}}') == StartVm(vm_id=3)
    assert job_to_json(StartVm(vm_id=3, admin_user_id=1, reason="r")) == (
        '{"StartVm":{"vm_id":3,"admin_user_id":1,"reason":"r"}}'
    )


def test_skippable_follows_the_reference_table() -> None:
    assert {k for k in JOB_KINDS if _example(k).skippable} == SKIPPABLE_KINDS
    assert {
        "CheckVms",
        "CheckVm",
        "CheckSubscriptions",
        "CheckNostrDomains",
        "StartVm",
        "StopVm",
    } == SKIPPABLE_KINDS


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '"NoSuchJob"',
        '"SpawnVm"',  # a job with fields needs them
        '{"CheckVm": 1}',
        '{"CheckVms": {"x": 1}}',
        "{}",
        '{"CheckVm": {"vm_id": 1}, "SpawnVm": {"vm_id": 1}}',
        '{"NoSuchJob": {}}',
        "[]",
        "42",
        '{"SpawnVm": {}}',  # a required field is missing
        '{"SpawnVm": {"vm_id": "seven"}}',
        '{"SpawnVm": {"vm_id": true}}',
        '{"SendNotification": {"user_id": 1, "message": 2}}',
        '{"ProcessVmUpgrade": {"vm_id": 1, "config": "not json"}}',
        '{"ProcessVmUpgrade": {"vm_id": 1, "config": {"new_cpu": -1}}}',
    ],
)
def test_invalid_json_jobs(text: str) -> None:
    with pytest.raises(InvalidJob):
        job_from_json(text)


def test_only_the_reference_jobs_are_written() -> None:
    with pytest.raises(InvalidJob):
        job_to_json(Job())


def test_jobs_check_their_field_types() -> None:
    with pytest.raises(InvalidJob):
        CheckVm(vm_id=cast(Any, 1.5))
    with pytest.raises(InvalidJob):
        DownloadOsImages(image_id=cast(Any, "all"))
