"""A job running past the claim idle time is run once: its worker keeps it (memory, Redis)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable

import pytest

from adapters.queue.memory import InProcessQueue
from adapters.queue.redis_streams import RedisStreamsQueue
from app.worker.dispatch import JobHandlers
from app.worker.loop import run_worker
from ports.jobs import SendNotification
from ports.queue import WorkQueue
from tests.redistest import connect_redis

#: the claim idle time, scaled down from Redis's 10 s; the notice takes over three of them
CLAIM_MS = 300
MAIL_S = 1.0

Consumers = Callable[[str], WorkQueue]


@pytest.fixture(params=["memory", "redis"])
async def consumers(request: pytest.FixtureRequest) -> AsyncIterator[Consumers]:
    """`consumers(name)`: a worker's queue on one shared queue (the same object in process)."""
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


async def test_a_slow_notice_is_mailed_once_by_two_workers(consumers: Consumers) -> None:
    """Before: the SMTP notifier allows 30 s, the Redis queue claimed a delivery idle for
    10 s, so a slow mail server had the second worker mail the same notice again (and a
    slow stop and resize ran ProcessVmUpgrade on two workers)."""
    sent: list[str] = []
    mailing = asyncio.Event()

    async def slow_mail(job: SendNotification) -> None:
        mailing.set()
        await asyncio.sleep(MAIL_S)
        sent.append(job.title or "")

    table = JobHandlers()
    table.on(SendNotification, slow_mail)
    a, b = consumers("a"), consumers("b")
    await b.receive(block_ms=0)  # both consumers known before the job comes
    await a.send(SendNotification(user_id=1, title="[VM1] Upgrade Complete", message="m"))
    stop = asyncio.Event()
    workers = [asyncio.create_task(run_worker(q, table, stop, block_ms=50)) for q in (a, b)]
    await asyncio.wait_for(mailing.wait(), 5)
    await asyncio.sleep(MAIL_S + 2 * CLAIM_MS / 1000)
    stop.set()
    await asyncio.gather(*workers)

    assert sent == ["[VM1] Upgrade Complete"]
    await asyncio.sleep(1.5 * CLAIM_MS / 1000)
    assert await a.receive(block_ms=10) == []  # acked: nothing comes back


async def test_a_dead_workers_delivery_still_goes_to_another(consumers: Consumers) -> None:
    """The keeps end with the job: a worker that dies running it leaves it to another."""
    ran: list[int] = []

    async def notify(job: SendNotification) -> None:
        ran.append(job.user_id)

    table = JobHandlers()
    table.on(SendNotification, notify)
    dead, alive = consumers("dead"), consumers("alive")
    await alive.receive(block_ms=0)
    await dead.send(SendNotification(user_id=7, message="m"))
    [lost] = await dead.receive(block_ms=10)  # …and the worker dies before running it
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(alive, table, stop, block_ms=50))
    await asyncio.sleep(3 * CLAIM_MS / 1000)
    stop.set()
    await worker

    assert ran == [7]
    assert await dead.keep(lost) is False
