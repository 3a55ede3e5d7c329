"""The worker gives up a job that keeps failing for good, on the in-process queue and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

import pytest

from adapters.queue.memory import InProcessQueue
from adapters.queue.redis_streams import RedisStreamsQueue
from app.worker.dispatch import JobHandlers
from app.worker.give_up import MAX_FAILED_DELIVERIES
from app.worker.loop import process
from ports.jobs import SendAdminNotification, SpawnVm
from ports.queue import Delivery, Job, WorkQueue
from ports.vmhost import VmHostError
from tests.contract.job_tables import spawn_and_notify
from tests.redistest import connect_redis

CLAIM_MS = 50
PAST_CLAIM_S = CLAIM_MS / 1000 * 1.5


@pytest.fixture(params=["memory", "redis"])
async def queue(request: pytest.FixtureRequest) -> AsyncIterator[WorkQueue]:
    if request.param == "memory":
        yield InProcessQueue(claim_idle_ms=CLAIM_MS)
        return
    client = await connect_redis()
    stream = f"lnvps_t_{secrets.token_hex(6)}"
    try:
        yield RedisStreamsQueue(client, consumer="w", stream=stream, claim_idle_ms=CLAIM_MS)
    finally:
        await client.delete(stream, f"{stream}:failures")
        await client.aclose()


class WorkerDied(BaseException):
    """The worker process dies: nothing after it runs (a BaseException, as SIGKILL)."""


class _DyingQueue:
    """A worker's view of `queue` that dies once: at its first send of an admin notice
    (`at="send"`) or at its first ack of a SpawnVm (`at="ack"`), before the call reaches
    the queue."""

    def __init__(self, queue: WorkQueue, at: str) -> None:
        self._queue, self._at, self.died = queue, at, 0

    def _die(self, at: str) -> None:
        if at == self._at and not self.died:
            self.died += 1
            raise WorkerDied

    async def send(self, job: Job) -> str:
        if isinstance(job, SendAdminNotification):
            self._die("send")
        return await self._queue.send(job)

    async def receive(self, max_jobs: int = 10, block_ms: int = 100) -> list[Delivery]:
        return await self._queue.receive(max_jobs, block_ms)

    async def ack(self, delivery: Delivery, *, then: Job | None = None) -> bool:
        if isinstance(delivery.job, SpawnVm):
            self._die("ack")
        return await self._queue.ack(delivery, then=then)

    @property
    def claim_idle_ms(self) -> int:
        return self._queue.claim_idle_ms

    async def keep(self, delivery: Delivery) -> bool:
        return await self._queue.keep(delivery)

    async def fail(self, delivery: Delivery, *, counted: bool = True) -> None:
        await self._queue.fail(delivery, counted=counted)


async def _work(queue: WorkQueue, handlers: JobHandlers, seen: list[Delivery]) -> None:
    """Run deliveries one by one until nothing more comes back after the claim idle time,
    or until far more came than any test expects (a job redelivered for ever). A worker
    that dies leaves its delivery un-acked, to come back after the claim idle time."""
    quiet = 0
    while quiet < 2 and len(seen) < 4 * MAX_FAILED_DELIVERIES:
        deliveries = await queue.receive(max_jobs=1, block_ms=10)
        if not deliveries:
            quiet += 1
            await asyncio.sleep(PAST_CLAIM_S)
            continue
        quiet = 0
        seen += deliveries
        with contextlib.suppress(WorkerDied):
            await process(queue, handlers, deliveries[0], busy_pause_s=0)


async def test_a_job_failing_for_good_is_given_up_and_reported_once(
    queue: WorkQueue, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[int] = []
    notices: list[SendAdminNotification] = []

    def spawn(job: SpawnVm) -> None:
        runs.append(job.vm_id)
        raise VmHostError("host refuses the template", transient=False)

    seen: list[Delivery] = []
    await queue.send(SpawnVm(vm_id=7))
    with caplog.at_level(logging.ERROR, logger="lnvps.worker"):
        await _work(queue, spawn_and_notify(spawn, notices), seen)
    assert runs == [7] * MAX_FAILED_DELIVERIES
    assert [d.failures for d in seen if isinstance(d.job, SpawnVm)] == list(
        range(MAX_FAILED_DELIVERIES)
    )
    [notice] = notices
    assert notice.title == "[VM7] Job SpawnVm given up"
    assert "SpawnVm(vm_id=7)" in notice.message and "VM #7 was paid for" in notice.message
    assert "host refuses the template" in notice.message
    [operator] = [r for r in caplog.records if r.getMessage().startswith("OPERATOR:")]
    assert "SpawnVm(vm_id=7)" in operator.getMessage()
    assert operator.exc_info is not None  # the traceback of the last error
    assert await queue.receive(block_ms=10) == []  # acked: nothing is owed any more


async def test_transient_failures_do_not_count_and_the_job_completes(queue: WorkQueue) -> None:
    """Permanent failures up to one short of the bound, then many more transient ones than
    the bound, then success: the job completes and no one is told."""
    errors: list[Exception] = [
        VmHostError("bad answer", transient=False) for _ in range(MAX_FAILED_DELIVERIES - 1)
    ]
    errors += [VmHostError("host down", transient=True) for _ in range(MAX_FAILED_DELIVERIES)]
    errors += [ConnectionRefusedError("no route") for _ in range(2)]
    runs: list[int] = []
    notices: list[SendAdminNotification] = []

    def spawn(job: SpawnVm) -> None:
        runs.append(job.vm_id)
        if errors:
            raise errors.pop(0)

    seen: list[Delivery] = []
    await queue.send(SpawnVm(vm_id=3))
    await _work(queue, spawn_and_notify(spawn, notices), seen)
    bound = MAX_FAILED_DELIVERIES
    assert runs == [3] * (2 * bound + 2)
    assert [d.failures for d in seen] == list(range(bound)) + [bound - 1] * (bound + 2)
    assert notices == []


async def test_a_failing_admin_notice_is_given_up_without_another_notice(
    queue: WorkQueue, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[SendAdminNotification] = []

    async def notify(job: SendAdminNotification) -> None:
        runs.append(job)
        raise RuntimeError("no admin has an address")

    table = JobHandlers()
    table.on(SendAdminNotification, notify)
    seen: list[Delivery] = []
    await queue.send(SendAdminNotification(title="t", message="m"))
    with caplog.at_level(logging.ERROR, logger="lnvps.worker"):
        await _work(queue, table, seen)
    assert len(runs) == MAX_FAILED_DELIVERIES  # the one notice, never a notice about it
    assert {job.title for job in runs} == {"t"}
    assert sum(r.getMessage().startswith("OPERATOR:") for r in caplog.records) == 1


def _always_refused(job: SpawnVm) -> None:
    raise VmHostError("host refuses the template", transient=False)


async def test_the_give_up_notice_is_not_lost_to_a_worker_dying_after_the_ack(
    queue: WorkQueue,
) -> None:
    """Before: the job was acked, then the notice sent: a worker dying in between (here at
    the send) left the job acked and the admins never told. The notice now goes with the
    ack, in one step."""
    dying = _DyingQueue(queue, at="send")
    notices: list[SendAdminNotification] = []
    seen: list[Delivery] = []
    await queue.send(SpawnVm(vm_id=9))
    await _work(dying, spawn_and_notify(_always_refused, notices), seen)
    [notice] = notices
    assert notice.title == "[VM9] Job SpawnVm given up"
    assert "host refuses the template" in notice.message
    assert await queue.receive(block_ms=10) == []  # acked: nothing is owed any more


async def test_a_worker_dying_before_the_give_up_ack_leaves_the_job_to_be_given_up_again(
    queue: WorkQueue,
) -> None:
    """The worker dies at the bound's failure before its ack went through: the job comes
    back, is given up before running (that death made the bound), and the admins are told
    once, by the worker that acked it."""
    dying = _DyingQueue(queue, at="ack")
    runs: list[int] = []
    notices: list[SendAdminNotification] = []

    def spawn(job: SpawnVm) -> None:
        runs.append(job.vm_id)
        _always_refused(job)

    seen: list[Delivery] = []
    await queue.send(SpawnVm(vm_id=4))
    await _work(dying, spawn_and_notify(spawn, notices), seen)
    assert dying.died == 1
    assert runs == [4] * MAX_FAILED_DELIVERIES  # the last delivery was not run
    assert [d.crashed for d in seen if isinstance(d.job, SpawnVm)][-1] == 1
    [notice] = notices
    assert f"{MAX_FAILED_DELIVERIES - 1} failed; 1 ended with no outcome" in notice.message
    assert await queue.receive(block_ms=10) == []
