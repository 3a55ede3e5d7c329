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
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
from collections.abc import Mapping, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path

_CONTEXT = multiprocessing.get_context("forkserver")
# imported once in the fork server: the server's modules, and this one (the child's target)
_CONTEXT.set_forkserver_preload(["lnvps.commands", "tests.e2e.forked"])


def _run(argv: list[str], cwd: str, env: dict[str, str], log: str) -> None:
    """In the forked child: the process a `python -m lnvps.cli ARGV…` would be."""
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
        self._process = process
        self._code: int | None = None

    @property
    def pid(self) -> int:
        pid = self._process.pid
        assert pid is not None
        return pid

    @property
    def returncode(self) -> int | None:
        """None while it runs; its exit status, or -N when signal N ended it."""
        if self._code is None:
            self._code = self._process.exitcode
            if self._code is not None:
                self._process.close()  # its pipe to the fork server
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


async def start_lnvps(
    argv: Sequence[str], *, cwd: Path, log: Path, env: Mapping[str, str] | None = None
) -> ForkedProcess:
    """Fork `lnvps ARGV…` in `cwd`, stdout and stderr appended to `log`, with this process's
    environment (or `env`). The first call starts the fork server (its imports run then,
    off the event loop)."""
    process = _CONTEXT.Process(
        target=_run,
        args=(list(argv), str(cwd), dict(os.environ if env is None else env), str(log)),
        name="lnvps",
    )
    await asyncio.to_thread(process.start)
    return ForkedProcess(process)


def stop_fork_server() -> None:
    """Stop this process's fork server, once every process it forked has ended, and reap it
    (its CPU time, and its children's, count in this process's then)."""
    from multiprocessing import forkserver

    forkserver._forkserver._stop()  # type: ignore[attr-defined]  # CPython 3.11, not typed
