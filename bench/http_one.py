"""Benchmark: one request kind against a seeded `lnvps serve`, with server CPU per request.

`python -m bench.http_one sqlite new` seeds a server as `bench.http` does, warms it up, then
drives the one request kind (`get`, `reused`, `new`, `ssh`) for `--duration` seconds, `--repeat`
times, and prints req/s, p50/p99 and the server's CPU time per request (user + system, from
`/proc`; with MariaDB, the server process's too). CPU per request hardly moves with what else
a shared machine runs, unlike req/s: compare two trees by alternating runs of this. The
server's pid is printed, so a profiler (e.g. `py-spy record -p PID`) can be attached.

A `new` run asks for renewal invoices no earlier run of the same server asked for: a repeat
of it would reuse the first run's pending invoices, so `--repeat` with `new` is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import http as bench_http
from bench.http_load import Req, generator_name, run_load

KINDS = ("get", "reused", "new", "ssh")
#: requests per warm-up (the last ones of the pool for `new`, which the measured run never
#: reaches at these durations)
WARM_UP = 500


def requests_for(kind: str, base: str, seeded: bench_http.Seeded) -> Callable[[], list[Req]]:
    vm = f"/api/v1/vm/{seeded.vm_id}"
    if kind == "get":
        return lambda: bench_http.signed_pool(base, "GET", [vm], 20000)
    if kind == "reused":
        return lambda: bench_http.signed_pool(base, "GET", [vm + "/renew?method=lightning"], 20000)
    if kind == "new":
        paths = seeded.new_invoice_paths
        return lambda: bench_http.signed_pool(base, "GET", paths, len(paths))
    if kind == "ssh":
        return lambda: bench_http.ssh_key_pool(base, 20000)
    raise ValueError(f"unknown request kind {kind!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_one", description=__doc__)
    parser.add_argument("backend", choices=("sqlite", "mysql"))
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per run (6)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1, help="runs on the same server (1)")
    parser.add_argument(
        "--db", default=bench_http.DEFAULT_SERVER, help="MariaDB server URL, no database"
    )
    args = parser.parse_args(argv)
    if args.kind == "new" and args.repeat != 1:
        parser.error("a repeated `new` run would reuse the first run's invoices")
    with tempfile.TemporaryDirectory(prefix="lnvps-bench-one-") as tmp:
        workdir = Path(tmp)
        with bench_http.database(args.backend, args.db, workdir, keep=False) as db_url:
            port = bench_http.free_port()
            base = f"http://127.0.0.1:{port}"
            config = workdir / "config.yaml"
            config.write_text(bench_http.server_config(db_url, port, workdir))
            serve = ["-m", "lnvps.cli", "--config", str(config), "serve"]
            with bench_http.process(serve, workdir / "serve.log", base + "/api/v1/image") as server:
                seeded = asyncio.run(bench_http.seed(base, config, db_url))
                print(f"load generator: {generator_name()}; server pid {server.pid}")
                reqs = requests_for(args.kind, base, seeded)
                warm = reqs()
                warm = warm[-WARM_UP:] if args.kind == "new" else warm[:WARM_UP]
                run_load(base, warm, connections=args.connections, duration=2)
                database = bench_http.mariadb_pid() if args.backend == "mysql" else None
                for _ in range(args.repeat):
                    print(_one_run(args, base, reqs, server.pid, database), flush=True)
    return 0


def _one_run(
    args: argparse.Namespace,
    base: str,
    reqs: Callable[[], list[Req]],
    pid: int,
    database: int | None,
) -> str:
    server_before = bench_http.cpu_seconds(pid)
    database_before = bench_http.cpu_seconds(database) if database is not None else 0.0
    result = run_load(base, reqs(), connections=args.connections, duration=args.duration)
    n = max(result.requests, 1)
    cpu = (bench_http.cpu_seconds(pid) - server_before) * 1000 / n
    line = (
        f"{args.backend} {args.kind}: {result.rate:.0f} req/s  p50 {result.p50_ms:.1f} ms  "
        f"p99 {result.p99_ms:.1f} ms  server cpu {cpu:.3f} ms/req"
    )
    if database is not None:
        spent = bench_http.cpu_seconds(database) - database_before
        line += f"  mariadbd cpu {spent * 1000 / n:.3f}"
    errors = f"  {result.errors} errors" if result.errors else ""
    return f"{line}{errors}  (load {os.getloadavg()[0]:.1f})"


if __name__ == "__main__":
    raise SystemExit(main())
