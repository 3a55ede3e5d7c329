"""Starts the real `lnvps serve` process for end-to-end tests and talks to it like a client."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import attrs

from lnvps.cli import main
from tests.e2e.forked import ForkedProcess, start_lnvps
from tests.nostr_signing import NostrKey, auth_header, nip98_event

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def lnvps(config: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the `lnvps` command line once (e.g. `dev pay`), as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "lnvps.cli", "--config", str(config), *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


_IN_PROCESS = threading.Lock()


def lnvps_in_process(*argv: str) -> subprocess.CompletedProcess[str]:
    """`lnvps ARGV…` once as `main(argv)` in a thread of this process: the same command, files
    and database as a real process, without a new interpreter's ~2 s of imports.

    The thread has its own event loop (callers may be inside one); stdout and stderr are
    captured while it runs and the loggers `main` reconfigures are restored afterwards.
    """
    out, err = io.StringIO(), io.StringIO()
    code: list[int] = []

    def run() -> None:
        try:
            code.append(main(list(argv)))
        except SystemExit as exc:  # argparse refusing the arguments
            code.append(exc.code if isinstance(exc.code, int) else 2)

    with _IN_PROCESS:
        root, alembic = logging.getLogger(), logging.getLogger("alembic")
        handlers, level, alembic_level = root.handlers[:], root.level, alembic.level
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                thread = threading.Thread(target=run, name="lnvps-cli")
                thread.start()
                thread.join(60)
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
            alembic.setLevel(alembic_level)
    if thread.is_alive() or not code:
        raise AssertionError(f"lnvps {argv} did not finish: {err.getvalue()[-2000:]}")
    return subprocess.CompletedProcess(["lnvps", *argv], code[0], out.getvalue(), err.getvalue())


@attrs.define
class RunningServer:
    """A running `lnvps serve` and a signing HTTP client for it."""

    base_url: str
    config: Path
    workdir: Path
    session: aiohttp.ClientSession
    process: asyncio.subprocess.Process | ForkedProcess
    admin_url: str = ""
    #: run each `lnvps` command (`dev pay`, `admin grant` …) as a real process the first time
    #: (the operator's walk), in-process after that; False: always in-process
    real_cli: bool = False
    _ran: set[tuple[str, ...]] = attrs.field(factory=set)

    async def call(
        self, method: str, path: str, key: NostrKey | None, body: Any = None
    ) -> tuple[int, Any]:
        url = self.base_url + path
        headers = {"Content-Type": "application/json"}
        if key is not None:
            # a nonce tag keeps two identical requests in one second from sharing an event id,
            # which D26 refuses for non-GET requests (real clients differ by `created_at`)
            tags = [["u", url], ["method", method], ["nonce", os.urandom(8).hex()]]
            event = nip98_event(key, url, method, int(time.time()), tags=tags)
            headers["Authorization"] = auth_header(event)
        data = None if body is None else json.dumps(body).encode()
        async with self.session.request(method, url, data=data, headers=headers) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = args[:2]
        if self.real_cli and command not in self._ran:
            self._ran.add(command)
            return lnvps(self.config, *args, cwd=self.workdir)
        return lnvps_in_process("--config", str(self.config), *args)


@asynccontextmanager
async def running_worker(workdir: Path) -> AsyncIterator[ForkedProcess]:
    """`lnvps serve --mode worker` on the config a running API server wrote (forked,
    `tests.e2e.forked`)."""
    argv = ["--config", str(workdir / "config.yaml"), "serve", "--mode", "worker"]
    process = await start_lnvps(argv, cwd=workdir, log=workdir / "worker.log")
    try:
        yield process
    finally:
        await _stop(process)


def _trial(extra_config: str) -> str:
    """`dev.enabled` for a server on the dev rail (MariaDB, Redis or a fiat rail make a
    config production-like, `lnvps.dev_mode`); none with a Lightning node configured."""
    return "" if "lnd:" in extra_config else "  enabled: true\n"


@asynccontextmanager
async def running_server(
    workdir: Path, db_url: str, extra_config: str = "", mode: str = "all", *, real_cli: bool = False
) -> AsyncIterator[RunningServer]:
    """`lnvps serve` on a free port with the dev rail, dummy host and demo catalogue, forked
    (`tests.e2e.forked`); its `cli()` runs `lnvps` commands in-process. With `real_cli` (the
    operator's walk) the server is a new interpreter and each command's first run is a real
    process."""
    port, admin_port = free_port(), free_port()
    config = workdir / "config.yaml"
    config.write_text(
        f"db: {db_url}\nlisten: 127.0.0.1:{port}\nadmin-listen: 127.0.0.1:{admin_port}\n"
        f"delete-after: 3\ndev:\n  state-dir: {workdir}\n{_trial(extra_config)}{extra_config}"
    )
    argv = ["--config", str(config), "serve", "--mode", mode]
    process: asyncio.subprocess.Process | ForkedProcess
    if real_cli:  # the operator's walk: `python -m lnvps.cli serve`, a new interpreter
        with (workdir / "serve.log").open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "lnvps.cli",
                *argv,
                cwd=workdir,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    else:
        process = await start_lnvps(argv, cwd=workdir, log=workdir / "serve.log")
    base = f"http://127.0.0.1:{port}"
    session = aiohttp.ClientSession()
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.returncode is not None:
                raise RuntimeError((workdir / "serve.log").read_text()[-4000:])
            try:
                async with session.get(base + "/api/v1/image") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError((workdir / "serve.log").read_text()[-4000:])
            await asyncio.sleep(0.05)
        yield RunningServer(
            base, config, workdir, session, process, f"http://127.0.0.1:{admin_port}", real_cli
        )
    finally:
        await session.close()
        await _stop(process)


async def _stop(process: asyncio.subprocess.Process | ForkedProcess) -> None:
    """SIGTERM (the server stops cleanly), SIGKILL if it is still there 20 s later."""
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=20)
        except TimeoutError:
            process.kill()
            await process.wait()
