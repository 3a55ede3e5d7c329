"""The job loop and schedulers: ack on success, retry or drop on failure, stop on the event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from adapters.queue.memory import InProcessQueue
from app.worker import loop as loop_module
from app.worker.dispatch import JobHandlers
from app.worker.loop import run, run_scheduler, run_worker
from ports.jobs import CheckSubscriptions, CheckVm, CheckVms, PatchHosts, SpawnVm
from ports.queue import Job
from ports.storage import StorageBusy


def _table(**handlers: Callable[[Any], Awaitable[None]]) -> JobHandlers:
    table = JobHandlers()
    kinds: dict[str, type[Job]] = {
        "SpawnVm": SpawnVm,
        "CheckVm": CheckVm,
        "CheckVms": CheckVms,
        "CheckSubscriptions": CheckSubscriptions,
    }
    for kind, handler in handlers.items():
        table.on(kinds[kind], handler)
    return table


async def _until(check: Callable[[], bool]) -> None:
    """Let the worker task run until `check` holds (at most ~2 s of real time)."""
    for _ in range(2000):
        if check():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


async def test_jobs_run_in_order_and_are_acked() -> None:
    queue = InProcessQueue()
    seen: list[int] = []

    async def spawn(job: SpawnVm) -> None:
        seen.append(job.vm_id)

    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(queue, _table(SpawnVm=spawn), stop, block_ms=5))
    for vm_id in (1, 2, 3):
        await queue.send(SpawnVm(vm_id=vm_id))
    await _until(lambda: len(seen) == 3)
    stop.set()
    await task
    assert seen == [1, 2, 3]
    assert queue.pending_count == 0


async def test_failed_jobs_are_retried_unless_skippable_and_unknown_kinds_dropped() -> None:
    queue = InProcessQueue()
    calls: dict[str, int] = {"SpawnVm": 0, "CheckVm": 0}

    def flaky(kind: str, failures: int) -> Callable[[Job], Awaitable[None]]:
        async def handle(job: Job) -> None:
            calls[kind] += 1
            if calls[kind] <= failures:
                raise RuntimeError("host down")

        return handle

    handlers = _table(SpawnVm=flaky("SpawnVm", 2), CheckVm=flaky("CheckVm", 5))
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(queue, handlers, stop, block_ms=5, failure_pause_s=0.001))
    await queue.send(SpawnVm(vm_id=1))  # not skippable: delivered again
    await queue.send(CheckVm(vm_id=1))  # skippable: dropped after one failure
    await queue.send(PatchHosts())  # no handler here: acked with a warning
    await _until(lambda: calls["SpawnVm"] == 3)
    stop.set()
    await task
    assert calls == {"SpawnVm": 3, "CheckVm": 1}
    assert queue.pending_count == 0


class _AckFailsOnce(InProcessQueue):
    """A queue whose first ack is lost (Redis gone for a moment)."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0

    async def ack(self, delivery: Any, *, then: Job | None = None) -> bool:
        if not self.lost:
            self.lost += 1
            raise ConnectionError("redis connection lost")
        return await super().ack(delivery, then=then)


async def test_a_queue_failure_does_not_stop_the_worker() -> None:
    """An ack that raised escaped `process` and ended the worker loop: no job ran again."""
    queue = _AckFailsOnce()
    seen: list[int] = []

    async def spawn(job: SpawnVm) -> None:
        seen.append(job.vm_id)

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_worker(queue, _table(SpawnVm=spawn), stop, block_ms=5, failure_pause_s=0.001)
    )
    await queue.send(SpawnVm(vm_id=1))
    await queue.send(SpawnVm(vm_id=2))
    await _until(lambda: 2 in seen)
    assert not task.done()
    stop.set()
    await task
    assert queue.lost == 1 and seen[0] == 1


class _KeepFails(InProcessQueue):
    """A queue whose keeps fail while `down` (Redis unreachable), counted."""

    def __init__(self, down: bool) -> None:
        super().__init__(claim_idle_ms=40)
        self.down = down
        self.keeps = 0

    async def keep(self, delivery: Any) -> bool:
        self.keeps += 1
        if self.down:
            raise ConnectionError("redis connection lost")
        return await super().keep(delivery)


@pytest.mark.parametrize("down", [False, True])
async def test_a_slow_job_is_kept_while_it_runs_and_no_longer(
    down: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Kept every half claim idle time while its handler runs, whether a keep gets through
    or not (a failed one is logged); the keeps stop with the handler, before the ack."""
    queue = _KeepFails(down)

    async def slow(job: SpawnVm) -> None:
        await asyncio.sleep(0.2)  # five claim idle times

    await queue.send(SpawnVm(vm_id=1))
    [delivery] = await queue.receive()
    with caplog.at_level(logging.WARNING, logger="lnvps.worker.keep_alive"):
        assert await loop_module.process(queue, _table(SpawnVm=slow), delivery)
    kept = queue.keeps
    assert 3 <= kept <= 10
    assert queue.pending_count == 0
    await asyncio.sleep(0.1)
    assert queue.keeps == kept
    assert bool(caplog.records) is down
    assert all("cannot keep its delivery" in r.getMessage() for r in caplog.records)


async def test_scheduler_sends_checks_at_once_and_stops_on_the_event() -> None:
    queue = InProcessQueue()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_scheduler(queue, (CheckVms, CheckSubscriptions), stop, interval_s=3600)
    )
    await _until(lambda: not queue._ready.empty())
    stop.set()
    await task
    sent = await queue.receive(max_jobs=10, block_ms=0)
    assert [d.job.kind for d in sent] == ["CheckVms", "CheckSubscriptions"]


async def test_run_combines_schedule_and_loop() -> None:
    queue = InProcessQueue()
    seen: list[str] = []

    async def record(job: Job) -> None:
        seen.append(job.kind)

    stop = asyncio.Event()
    task = asyncio.create_task(
        run(queue, _table(CheckVms=record, CheckSubscriptions=record), stop, interval_s=3600)
    )
    await _until(lambda: len(seen) == 2)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert sorted(seen) == ["CheckSubscriptions", "CheckVms"]


async def test_a_job_refused_by_a_busy_database_is_retried_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """StorageBusy (a lock timeout or deadlock) is no crash: a warning without traceback,
    and the job is delivered again like any failed job that is not skippable."""
    queue = InProcessQueue()
    calls: list[int] = []

    async def spawn(job: SpawnVm) -> None:
        calls.append(job.vm_id)
        if len(calls) == 1:
            raise StorageBusy()

    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="lnvps"):
        task = asyncio.create_task(
            run_worker(queue, _table(SpawnVm=spawn), stop, block_ms=5, failure_pause_s=0.001)
        )
        await queue.send(SpawnVm(vm_id=7))
        await _until(lambda: len(calls) == 2)
        stop.set()
        await task
    assert calls == [7, 7]
    assert queue.pending_count == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert any("database busy" in r.getMessage() for r in caplog.records)


async def _run_until(
    queue: InProcessQueue, table: JobHandlers, job: Job, done: Callable[[], bool]
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(queue, table, stop, block_ms=5, failure_pause_s=0.001))
    await queue.send(job)
    await _until(done)
    await asyncio.sleep(0.02)  # nothing more happens after it
    stop.set()
    await task


async def test_a_skippable_job_refused_busy_runs_again_in_place_and_is_not_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An admin's start or stop is skippable: a failure drops it. A busy database is run out
    in place instead (up to three runs), so the admin's request is not lost."""
    queue = InProcessQueue()
    calls: list[int] = []

    async def check(job: CheckVm) -> None:
        calls.append(job.vm_id)
        if len(calls) < 3:
            raise StorageBusy()

    with caplog.at_level(logging.WARNING, logger="lnvps"):
        await _run_until(queue, _table(CheckVm=check), CheckVm(vm_id=4), lambda: len(calls) == 3)
    assert calls == [4, 4, 4]
    assert queue.pending_count == 0
    assert sum("run again" in r.getMessage() for r in caplog.records) == 2
    assert not any("dropped" in r.getMessage() for r in caplog.records)


async def test_a_skippable_job_busy_on_every_run_is_dropped_after_three(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = InProcessQueue()
    calls: list[int] = []

    async def check(job: CheckVm) -> None:
        calls.append(job.vm_id)
        raise StorageBusy()

    with caplog.at_level(logging.WARNING, logger="lnvps"):
        await _run_until(queue, _table(CheckVm=check), CheckVm(vm_id=5), lambda: len(calls) == 3)
    assert calls == [5, 5, 5]
    assert queue.pending_count == 0
    assert any("busy" in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_job_busy_after_a_long_run_is_not_run_again_in_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A busy answer after a long lock wait: running the job again would hold the delivery
    past the queue's claim idle time, so it fails at once (the queue's usual way)."""
    monkeypatch.setattr(loop_module, "BUSY_RETRY_WITHIN_S", 0.01)
    queue = InProcessQueue()
    calls: list[int] = []

    async def check(job: CheckVm) -> None:
        calls.append(job.vm_id)
        await asyncio.sleep(0.02)  # a lock wait longer than the window
        raise StorageBusy()

    await _run_until(queue, _table(CheckVm=check), CheckVm(vm_id=6), lambda: len(calls) == 1)
    assert calls == [6]
    assert queue.pending_count == 0  # skippable: dropped


async def test_a_stop_cuts_the_busy_pause_short_and_the_job_is_still_run() -> None:
    """The pause between busy runs (a minute here) ends when the worker is told to stop; the
    job in hand is still run again, then acked."""
    queue = InProcessQueue()
    calls: list[int] = []
    stop = asyncio.Event()

    async def check(job: CheckVm) -> None:
        calls.append(job.vm_id)
        if len(calls) == 1:
            stop.set()  # the worker is told to stop while this job is in hand
            raise StorageBusy()

    await queue.send(CheckVm(vm_id=7))
    [delivery] = await queue.receive(max_jobs=1, block_ms=10)
    handled = loop_module.process(
        queue, _table(CheckVm=check), delivery, busy_pause_s=60.0, stop_event=stop
    )
    assert await asyncio.wait_for(handled, timeout=10)  # not the minute's pause
    assert calls == [7, 7]
    assert queue.pending_count == 0
