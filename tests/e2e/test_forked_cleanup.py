"""A forked `lnvps serve` that its test forgot to stop never outlives the run: the cleanup
kills it, and it dies with its fork server (`tests.e2e.forked`)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from multiprocessing import forkserver
from pathlib import Path

import aiohttp

from tests.dbtest import SqliteTemplate
from tests.e2e.forked import ForkedProcess, kill_forked, start_lnvps
from tests.e2e.serve_process import free_port


async def _forgotten_server(workdir: Path, template: SqliteTemplate) -> ForkedProcess:
    """`lnvps serve` forked and answering, as a test that failed before stopping it leaves it."""
    db = await template.copy_to(workdir / "lnvps.db")
    port, admin_port = free_port(), free_port()
    config = workdir / "config.yaml"
    config.write_text(
        f"db: {db}\nlisten: 127.0.0.1:{port}\nadmin-listen: 127.0.0.1:{admin_port}\n"
        f"dev:\n  state-dir: {workdir}\n"
    )
    log = workdir / "serve.log"
    process = await start_lnvps(["--config", str(config), "serve"], cwd=workdir, log=log)
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while True:
            assert process.returncode is None, log.read_text()[-4000:]
            try:
                async with session.get(f"http://127.0.0.1:{port}/api/v1/image") as resp:
                    if resp.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            await asyncio.sleep(0.05)


def _gone(pid: int) -> bool:
    """No process `pid` runs (none, or only its exit status left to reap)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


async def test_the_cleanup_kills_a_forked_server_left_running(
    tmp_path: Path, _sqlite_template: SqliteTemplate
) -> None:
    process = await _forgotten_server(tmp_path, _sqlite_template)

    killed = kill_forked()

    assert killed == [process.pid]
    assert await process.wait() == -signal.SIGKILL
    assert _gone(process.pid)
    assert kill_forked() == []


async def test_a_forked_server_dies_with_its_fork_server(
    tmp_path: Path, _sqlite_template: SqliteTemplate
) -> None:
    """The fork server stops once this process lets go of it (as when this process dies,
    however), even with a forked server still running, and takes that server with it. The
    next `start_lnvps` starts a new fork server."""
    process = await _forgotten_server(tmp_path, _sqlite_template)
    pid = process.pid
    stop = forkserver._forkserver._stop  # type: ignore[attr-defined]  # CPython 3.11, not typed
    stopping = threading.Thread(target=stop, daemon=True)
    stopping.start()
    stopping.join(10)
    if stopping.is_alive():  # the fork server waits for its child: free it, then fail
        process.kill()
        stopping.join(30)
        raise AssertionError("the fork server did not stop while a forked server ran")

    deadline = time.monotonic() + 10
    while not _gone(pid):
        assert time.monotonic() < deadline, f"forked server {pid} outlived its fork server"
        await asyncio.sleep(0.05)
