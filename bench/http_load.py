"""The load generator of `bench.http`: `wrk` when installed, else a bundled asyncio client.

Both replay a prepared list of requests (method, path, Authorization, body) in order, one
after the other over keep-alive connections, and wrap around when the list runs out (the
caller sizes the list so that distinct NIP-98 events are never reused where it matters).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import attrs


@attrs.frozen
class Req:
    method: str
    path: str
    auth: str = ""
    body: str = ""


@attrs.frozen
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # connect/read/write/timeout failures and non-2xx/3xx answers

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


_WRK_SCRIPT = r"""
local reqs = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do
    local m, p, a, b = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    local h = {}
    if a ~= "" then h["Authorization"] = a end
    if b ~= "" then h["Content-Type"] = "application/json" else b = nil end
    reqs[#reqs + 1] = wrk.format(m, p, h, b)
  end
end
function request()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def generator_name() -> str:
    """What drives the load on this machine (printed with the figures)."""
    wrk = shutil.which("wrk")
    return f"wrk ({wrk}, -t1)" if wrk else "bundled Python client (asyncio + aiohttp)"


def run_load(
    base_url: str, reqs: Sequence[Req], *, connections: int, duration: float
) -> LoadResult:
    if shutil.which("wrk"):
        return _run_wrk(base_url, reqs, connections=connections, duration=duration)
    return asyncio.run(_run_python(base_url, reqs, connections=connections, duration=duration))


def _run_wrk(
    base_url: str, reqs: Sequence[Req], *, connections: int, duration: float
) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="lnvps-wrk-") as tmp:
        script, data = Path(tmp) / "replay.lua", Path(tmp) / "requests.tsv"
        script.write_text(_WRK_SCRIPT)
        data.write_text("".join(f"{r.method}\t{r.path}\t{r.auth}\t{r.body}\n" for r in reqs))
        timeout = max(2, int(duration))
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration:g}s",
                f"--timeout={timeout}s",
                "-s",
                str(script),
                base_url,
                "--",
                str(data),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    requests, micros, p50, p99, errors = (int(v) for v in line.split()[1:])
    return LoadResult(requests, micros / 1e6, p50 / 1000, p99 / 1000, errors)


async def _run_python(
    base_url: str, reqs: Sequence[Req], *, connections: int, duration: float
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    counter = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(base_url, connector=connector) as session:
        stop_at = time.perf_counter() + duration

        async def client() -> None:
            nonlocal counter, errors
            while time.perf_counter() < stop_at:
                req = reqs[counter % len(reqs)]
                counter += 1
                headers = {"Authorization": req.auth} if req.auth else {}
                if req.body:
                    headers["Content-Type"] = "application/json"
                start = time.perf_counter()
                try:
                    async with session.request(
                        req.method, req.path, headers=headers, data=req.body or None
                    ) as resp:
                        await resp.read()
                        if resp.status >= 400:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(q: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return LoadResult(len(latencies), elapsed, pct(0.5), pct(0.99), errors)
