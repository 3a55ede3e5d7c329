"""A job that kills the worker running it is given up once after the bound (memory, Redis)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from adapters.queue.memory import InProcessQueue
from adapters.queue.redis_streams import RedisStreamsQueue
from app.worker.dispatch import JobHandlers
from app.worker.give_up import MAX_FAILED_DELIVERIES
from app.worker.loop import process
from ports.jobs import SendAdminNotification, SpawnVm
from ports.queue import Delivery, WorkQueue
from ports.vmhost import VmHostError
from tests.contract.job_tables import spawn_and_notify
from tests.redistest import connect_redis

CLAIM_MS = 50
PAST_CLAIM_S = CLAIM_MS / 1000 * 1.5
POISON = 666

Consumers = Callable[[str], WorkQueue]


class WorkerDied(BaseException):
    """The worker process dies inside the handler: nothing after it runs, no ack, no fail
    (a BaseException, so `process` lets it through as it would a SIGKILL)."""


@pytest.fixture(params=["memory", "redis"])
async def consumers(request: pytest.FixtureRequest) -> AsyncIterator[Consumers]:
    """`consumers(name)`: a new worker on one shared queue (the same object in process,
    where a dead worker's delivery comes back after the claim idle time as on Redis)."""
    if request.param == "memory":
        shared = InProcessQueue(claim_idle_ms=CLAIM_MS)
        yield lambda _name: shared
        return
    client = await connect_redis()
    stream = f"lnvps_t_{secrets.token_hex(6)}"

    def consumer(name: str) -> WorkQueue:
        return RedisStreamsQueue(client, consumer=name, stream=stream, claim_idle_ms=CLAIM_MS)

    try:
        yield consumer
    finally:
        await client.delete(stream, f"{stream}:failures")
        await client.aclose()


async def _work(
    consumers: Consumers,
    handlers: JobHandlers,
    seen: list[Delivery],
    on_delivery: Callable[[int], Awaitable[None]] | None = None,
) -> int:
    """Workers taking one job at a time until nothing comes back after the claim idle
    time; a worker that dies is replaced by a new one. How many workers died."""
    deaths = 0
    queue = consumers("w0")
    quiet = 0
    while quiet < 2 and len(seen) < 6 * MAX_FAILED_DELIVERIES:
        deliveries = await queue.receive(max_jobs=1, block_ms=10)
        if not deliveries:
            quiet += 1
            await asyncio.sleep(PAST_CLAIM_S)
            continue
        quiet = 0
        seen += deliveries
        if on_delivery is not None:
            await on_delivery(len(seen))
        try:
            await process(queue, handlers, deliveries[0], busy_pause_s=0)
        except WorkerDied:
            deaths += 1
            queue = consumers(f"w{deaths}")  # the dead worker's delivery stays un-acked
    return deaths


async def test_a_job_that_kills_every_worker_is_given_up_once_and_others_flow(
    consumers: Consumers, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: no failure was ever recorded, so the poison job came back after each claim
    idle time and killed the next worker, for ever (the loop stopped at its cap)."""
    runs: list[int] = []
    notices: list[SendAdminNotification] = []

    def spawn(job: SpawnVm) -> None:
        runs.append(job.vm_id)
        if job.vm_id == POISON:
            raise WorkerDied

    queue = consumers("sender")
    await queue.send(SpawnVm(vm_id=POISON))
    for vm_id in (1, 2):
        await queue.send(SpawnVm(vm_id=vm_id))

    async def send_more(n: int) -> None:  # jobs sent while the poison job kills workers
        if n in (3, 9):
            await queue.send(SpawnVm(vm_id=100 + n))

    seen: list[Delivery] = []
    with caplog.at_level(logging.WARNING, logger="lnvps.worker"):
        deaths = await _work(consumers, spawn_and_notify(spawn, notices), seen, send_more)
    assert deaths == MAX_FAILED_DELIVERIES
    assert runs.count(POISON) == MAX_FAILED_DELIVERIES  # the last delivery did not run it
    assert sorted(r for r in runs if r != POISON) == [1, 2, 103, 109]  # each ran once
    poison = [d for d in seen if d.job == SpawnVm(vm_id=POISON)]
    assert [d.deliveries for d in poison] == list(range(1, MAX_FAILED_DELIVERIES + 2))
    assert [d.crashed for d in poison] == list(range(MAX_FAILED_DELIVERIES + 1))
    assert {(d.failures, d.passing) for d in poison} == {(0, 0)}
    [notice] = notices
    assert notice.title == f"[VM{POISON}] Job SpawnVm given up"
    assert f"SpawnVm(vm_id={POISON})" in notice.message
    assert f"{MAX_FAILED_DELIVERIES} ended with no outcome recorded" in notice.message
    assert "the worker process died running it" in notice.message
    [operator] = [r for r in caplog.records if r.getMessage().startswith("OPERATOR:")]
    assert f"SpawnVm(vm_id={POISON})" in operator.getMessage()
    assert operator.exc_info is None  # no error: the worker died
    assert await consumers("after").receive(block_ms=10) == []  # nothing is owed any more


async def test_transient_failures_between_crashes_do_not_count(consumers: Consumers) -> None:
    """Deaths up to one short of the bound, then many more transient failures than the
    bound, each survived, then success: delivered far more often than the bound, the job
    is not given up, since only the deaths and failures for good count."""
    outcomes: list[str] = ["die"] * (MAX_FAILED_DELIVERIES - 1)
    outcomes += ["transient"] * (2 * MAX_FAILED_DELIVERIES)
    runs: list[int] = []
    notices: list[SendAdminNotification] = []

    def spawn(job: SpawnVm) -> None:
        runs.append(job.vm_id)
        outcome = outcomes.pop(0) if outcomes else "ok"
        if outcome == "die":
            raise WorkerDied
        if outcome == "transient":
            raise VmHostError("host down", transient=True)

    await consumers("sender").send(SpawnVm(vm_id=5))
    seen: list[Delivery] = []
    deaths = await _work(consumers, spawn_and_notify(spawn, notices), seen)
    bound = MAX_FAILED_DELIVERIES
    assert deaths == bound - 1
    assert runs == [5] * (3 * bound)
    assert [d.deliveries for d in seen] == list(range(1, 3 * bound + 1))
    assert [d.crashed for d in seen] == list(range(bound)) + [bound - 1] * (2 * bound)
    assert [d.passing for d in seen] == [0] * bound + list(range(1, 2 * bound + 1))
    assert notices == []
    assert await consumers("after").receive(block_ms=10) == []


async def test_a_death_counts_with_the_failures_for_good(consumers: Consumers) -> None:
    """One death and failures for good up to the bound between them: given up at the
    bound's failure, as a job that never killed a worker would be one failure later."""
    outcomes = ["die"] + ["refused"] * MAX_FAILED_DELIVERIES
    runs: list[int] = []
    notices: list[SendAdminNotification] = []

    def spawn(job: SpawnVm) -> None:
        runs.append(job.vm_id)
        if outcomes.pop(0) == "die":
            raise WorkerDied
        raise VmHostError("host refuses the template", transient=False)

    await consumers("sender").send(SpawnVm(vm_id=6))
    seen: list[Delivery] = []
    assert await _work(consumers, spawn_and_notify(spawn, notices), seen) == 1
    assert runs == [6] * MAX_FAILED_DELIVERIES
    [notice] = notices
    assert f"{MAX_FAILED_DELIVERIES - 1} failed; 1 ended with no outcome" in notice.message
    assert "host refuses the template" in notice.message


async def test_two_workers_holding_the_poison_job_give_it_up_once(
    consumers: Consumers, caplog: pytest.LogCaptureFixture
) -> None:
    """A slow worker still holds the job past the claim idle time when another claims it,
    both at the bound: each gives it up, and only the one whose ack took it off the queue
    logs it and tells the admins."""
    runs: list[int] = []
    notices: list[SendAdminNotification] = []

    def spawn(job: SpawnVm) -> None:
        runs.append(job.vm_id)
        raise WorkerDied

    handlers = spawn_and_notify(spawn, notices)
    await consumers("sender").send(SpawnVm(vm_id=8))
    seen: list[Delivery] = []
    deaths = 0
    while deaths < MAX_FAILED_DELIVERIES:  # the job kills the bound's number of workers
        [delivery] = await consumers(f"w{deaths}").receive(max_jobs=1, block_ms=10)
        seen.append(delivery)
        with pytest.raises(WorkerDied):
            await process(consumers(f"w{deaths}"), handlers, delivery)
        deaths += 1
        await asyncio.sleep(PAST_CLAIM_S)
    slow, fast = consumers("slow"), consumers("fast")
    [held] = await slow.receive(max_jobs=1, block_ms=10)
    await asyncio.sleep(PAST_CLAIM_S)
    [claimed] = await fast.receive(max_jobs=1, block_ms=10)
    assert held.id == claimed.id and held.crashed >= MAX_FAILED_DELIVERIES
    with caplog.at_level(logging.WARNING, logger="lnvps.worker"):
        done = await asyncio.gather(
            process(slow, handlers, held, busy_pause_s=0),
            process(fast, handlers, claimed, busy_pause_s=0),
        )
    assert list(done) == [False, False]
    assert runs == [8] * MAX_FAILED_DELIVERIES
    sent = await consumers("admin").receive(max_jobs=10, block_ms=10)
    assert [d.job.kind for d in sent] == ["SendAdminNotification"]  # one notice, not two
    assert sum(r.getMessage().startswith("OPERATOR:") for r in caplog.records) == 1
    assert sum("done by another worker" in r.getMessage() for r in caplog.records) == 1
