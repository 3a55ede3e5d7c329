"""`lnvps …` as a process of its own, forked from a process that imported the app once.

A new interpreter spends ~1.5 s of CPU (2-5 s on a loaded machine) importing the app before
`lnvps serve` answers; the end-to-end tests start ~30 such processes. Here a fork server
(multiprocessing's, one per test process) imports `lnvps.commands` once, and each start
forks it and runs `main(argv)` in the child, as `python -m lnvps.cli ARGV…` would: its own
pid, working directory, environment, log file, database connections and dev-rail files,
signals delivered to it alone (SIGTERM stops it, SIGKILL kills it without cleanup). What a
fork skips is only the imports. `tests.e2e.serve_process.lnvps` and the first server of the
operator's walk (`test_pulumi_walk`) still start a new interpreter, so the command line
itself stays covered.

No forked process outlives its test process: `kill_forked` kills what a test left running
(after each end-to-end test, before the fork server stops, at exit), and a forked process
dies with the fork server (`_bound_to_fork_server`), which stops when the test process does,
however it ends. Each pytest-xdist worker has its own fork server and kills only its own.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from multiprocessing import forkserver
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

_CONTEXT = multiprocessing.get_context("forkserver")
# imported once in the fork server: the server's modules, and this one (the child's target)
_CONTEXT.set_forkserver_preload(["lnvps.commands", "tests.e2e.forked"])
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: how long `kill_forked` waits for a killed process to be reaped
_REAP_TIMEOUT_S = 30.0


def _bound_to_fork_server(server_pid: int) -> None:
    """In the forked child: die (SIGKILL) when the fork server ends, and let it end.

    The child inherits the test process's end of the pipe whose closing tells the fork
    server to stop; a child that kept it open would keep the fork server (and itself)
    running after the test process closed its own end or died, and `stop_fork_server`
    would wait for it for ever. Closed here, the fork server stops as soon as the test
    process lets go, and the kernel kills its children then (`PR_SET_PDEATHSIG`)."""
    state: Any = forkserver._forkserver  # its private parts: CPython 3.11, not typed
    if state._forkserver_alive_fd is not None:
        os.close(state._forkserver_alive_fd)
        state._forkserver_alive_fd = None
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != server_pid:  # the fork server ended before the line above
        os._exit(1)


def _run(argv: list[str], cwd: str, env: dict[str, str], log: str, server_pid: int) -> None:
    """In the forked child: the process a `python -m lnvps.cli ARGV…` would be."""
    _bound_to_fork_server(server_pid)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)
    from lnvps.cli import main

    sys.exit(main(argv))


class ForkedProcess:
    """The parts of `asyncio.subprocess.Process` the tests use, for a forked `lnvps`."""

    def __init__(self, process: BaseProcess) -> None:
        pid = process.pid
        assert pid is not None, "not started"
        self._process = process
        self._pid = pid  # still known once the process object is closed
        self._code: int | None = None
        _RUNNING.add(self)

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def returncode(self) -> int | None:
        """None while it runs; its exit status, or -N when signal N ended it."""
        if self._code is None:
            self._code = self._process.exitcode
            if self._code is not None:
                self._process.close()  # its pipe to the fork server
                _RUNNING.discard(self)
        return self._code

    def terminate(self) -> None:
        if self.returncode is None:
            self._process.terminate()

    def kill(self) -> None:
        if self.returncode is None:
            self._process.kill()

    async def wait(self) -> int:
        """Its exit status, once it ended (the fork server writes it to the sentinel pipe)."""
        if self.returncode is None:
            ended = asyncio.Event()
            sentinel = self._process.sentinel
            loop = asyncio.get_running_loop()
            loop.add_reader(sentinel, ended.set)
            try:
                await ended.wait()
            finally:
                loop.remove_reader(sentinel)
        code = self.returncode
        assert code is not None
        return code


#: the processes this process forked that were not seen ending yet
_RUNNING: set[ForkedProcess] = set()


def kill_forked() -> list[int]:
    """SIGKILL every process this process forked (`start_lnvps`) that still runs, as a test
    that failed midway may leave one, and wait until each has ended; returns their pids.

    Only this process's own: another pytest-xdist worker's processes are its fork
    server's children and in its own list. A process still there after 30 s fails this."""
    killed = []
    for process in list(_RUNNING):
        if process.returncode is None:
            killed.append(process.pid)
            process.kill()
    for process in list(_RUNNING):
        process._process.join(_REAP_TIMEOUT_S)
        if process.returncode is None:
            raise RuntimeError(f"forked process {process.pid} still runs after SIGKILL")
    return killed


def _start(argv: list[str], cwd: str, env: dict[str, str], log: str) -> BaseProcess:
    """Start the fork server if it is not running, and fork `_run` from it."""
    forkserver.ensure_running()
    server_pid = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    process = _CONTEXT.Process(target=_run, args=(argv, cwd, env, log, server_pid), name="lnvps")
    process.start()
    return process


async def start_lnvps(
    argv: Sequence[str], *, cwd: Path, log: Path, env: Mapping[str, str] | None = None
) -> ForkedProcess:
    """Fork `lnvps ARGV…` in `cwd`, stdout and stderr appended to `log`, with this process's
    environment (or `env`). The first call starts the fork server (its imports run then,
    off the event loop)."""
    environ = dict(os.environ if env is None else env)
    process = await asyncio.to_thread(_start, list(argv), str(cwd), environ, str(log))
    return ForkedProcess(process)


def stop_fork_server() -> None:
    """Kill what this process forked and left running (`kill_forked`), then stop its fork
    server and reap it (its CPU time, and its children's, count in this process's then)."""
    kill_forked()
    forkserver._forkserver._stop()  # type: ignore[attr-defined]  # CPython 3.11, not typed


#: run before multiprocessing's own exit handler (registered earlier), which waits for every
#: child process still running: a forked server left running would hang the exit
atexit.register(kill_forked)
