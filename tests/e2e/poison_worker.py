"""A worker process on a Redis stream for the poison-job test: SpawnVm 666 kills it mid-job."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import redis.asyncio as aioredis

from adapters.queue.redis_streams import RedisStreamsQueue
from app.worker.dispatch import JobHandlers
from app.worker.loop import run_worker
from ports.jobs import SendAdminNotification, SpawnVm

POISON = 666
#: the exit status of a worker the poison job killed
DIED = 17
GROUP = "workers"
#: a worker stops (status 0) once nothing is owed and no job ran for this long
QUIET_S = 0.3
#: ... or after this long, whatever is owed
LIFETIME_S = 30.0


async def main(url: str, stream: str, consumer: str, claim_idle_ms: int) -> None:
    """Run the real worker loop until quiet; record jobs run in `<stream>:done` and the
    admins' notices in `<stream>:notices`; `os._exit` inside the poison job's handler."""
    client = aioredis.Redis.from_url(url)
    queue = RedisStreamsQueue(
        client, consumer=consumer, stream=stream, group=GROUP, claim_idle_ms=claim_idle_ms
    )
    last_run = time.monotonic()

    async def spawn(job: SpawnVm) -> None:
        nonlocal last_run
        last_run = time.monotonic()
        if job.vm_id == POISON:
            os._exit(DIED)  # no ack, no fail, no finally: as a segfault or an OOM kill
        await client.rpush(f"{stream}:done", job.vm_id)

    async def notify(job: SendAdminNotification) -> None:
        nonlocal last_run
        last_run = time.monotonic()
        await client.rpush(f"{stream}:notices", job.title or "")

    handlers = JobHandlers()
    handlers.on(SpawnVm, spawn)
    handlers.on(SendAdminNotification, notify)
    stop = asyncio.Event()
    started = time.monotonic()

    async def _unread() -> int:
        """Entries the group has not read yet (a notice the last give-up queued): "quiet"
        must not stop a worker before it reads them."""
        groups = await client.xinfo_groups(stream)
        lag = next((g.get("lag") for g in groups if g.get("name") in (GROUP, GROUP.encode())), 0)
        return int(lag or 0)

    async def until_quiet() -> None:
        while time.monotonic() - started < LIFETIME_S:
            await asyncio.sleep(0.05)
            if time.monotonic() - last_run < QUIET_S:
                continue
            if (await client.xpending(stream, GROUP))["pending"] == 0 and not await _unread():
                break
        stop.set()

    await asyncio.gather(
        run_worker(queue, handlers, stop, block_ms=20, failure_pause_s=0.05), until_quiet()
    )
    await client.aclose()


if __name__ == "__main__":
    url, stream, consumer, claim_idle_ms = sys.argv[1:]
    asyncio.run(main(url, stream, consumer, int(claim_idle_ms)))
