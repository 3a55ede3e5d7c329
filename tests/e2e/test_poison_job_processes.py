"""Worker processes on the real Redis that a job kills (`os._exit` in its handler): after the
bound it is given up once, and every other job runs once meanwhile and after."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys

from adapters.queue.redis_streams import RedisStreamsQueue
from app.worker.give_up import MAX_FAILED_DELIVERIES
from ports.jobs import SpawnVm
from tests.e2e.poison_worker import DIED, GROUP, POISON
from tests.e2e.serve_process import REPO
from tests.redistest import REDIS_URL, connect_redis

#: the claim idle time of the workers: a dead worker's job is claimed again after it
CLAIM_MS = 300


async def _worker(stream: str, consumer: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.poison_worker",
        REDIS_URL,
        stream,
        consumer,
        str(CLAIM_MS),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_a_job_that_kills_each_worker_process_is_given_up_once() -> None:
    """Before: each new worker claimed the job again and died on it, for ever."""
    client = await connect_redis()
    stream = f"lnvps_t_{secrets.token_hex(6)}"
    keys = (stream, f"{stream}:failures", f"{stream}:done", f"{stream}:notices")
    try:
        queue = RedisStreamsQueue(client, consumer="api", stream=stream, group=GROUP)
        await queue.send(SpawnVm(vm_id=POISON))
        codes: list[int] = []
        for n in range(1, 3 * MAX_FAILED_DELIVERIES):
            await queue.send(SpawnVm(vm_id=n))  # a job sent while workers die
            code, out = await _worker(stream, f"worker-{n}")
            codes.append(code)
            if code != DIED:
                break
        assert codes == [DIED] * MAX_FAILED_DELIVERIES + [0], out
        assert "OPERATOR: job SpawnVm(vm_id=666)" in out
        done = [int(v) for v in await client.lrange(f"{stream}:done", 0, -1)]
        assert sorted(done) == list(range(1, MAX_FAILED_DELIVERIES + 2))  # each ran once
        notices = await client.lrange(f"{stream}:notices", 0, -1)
        assert notices == [f"[VM{POISON}] Job SpawnVm given up".encode()]
        assert (await client.xpending(stream, GROUP))["pending"] == 0
        assert await client.exists(f"{stream}:failures") == 0
    finally:
        await client.delete(*keys)
        await client.aclose()
