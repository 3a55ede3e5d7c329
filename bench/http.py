"""Benchmark: the HTTP API against a bare aiohttp handler and the minimal-stack probe (issue 10).

`python -m bench.http` starts the bare handler, then for each backend (SQLite, MariaDB) a
seeded `lnvps serve` and the minimal-stack probe on the same database, drives each with the
same load generator and prints req/s, p50/p99 and the goal ratios. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import attrs
from coincurve import PrivateKey, PublicKeyXOnly
from sqlalchemy import text
from sqlalchemy.engine import make_url

from adapters.mysql.engine import create_engine, normalize_db_url
from app.account.ssh_keys import MAX_SSH_KEYS
from bench.http_load import LoadResult, Req, generator_name, run_load

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SERVER = "mysql://root@127.0.0.1:3306/"
SECRET = hashlib.sha256(b"lnvps-bench-http").digest()
PUBKEY_HEX = PublicKeyXOnly.from_secret(SECRET).format().hex()
#: unpaid VMs ordered besides the paid one: each gives 119 distinct new renewal invoices (61 ×
#: 119 = 7 259 in all, so that an 8 s run at up to ~900 req/s never asks for one twice)
EXTRA_VMS = 60
#: one user orders all EXTRA_VMS unpaid: past D25's per-user room and host share
NO_ROOM_LIMITS = (
    "max-unpaid-room: {cpu: null, memory-gib: null, disk-gib: null}\nunpaid-host-share: 100\n"
)
#: the interval counts each of those VMs' new renewal invoices ask for (all live at once)
NEW_INVOICE_INTERVALS = range(2, 121)
#: `max-live-quotes` for the benchmarks' server: every one of those invoices stays live for
#: the run (the default cap of 5 live quotes per subscription would refuse them with 422)
LIVE_QUOTES_CAP = len(NEW_INVOICE_INTERVALS) + 1


#: D26's replay-guard shares for the benchmarks' server: every signed write of a run comes
#: from 127.0.0.1, so the default address share (1 000 live event ids) refused all but the
#: first thousand `POST /api/v1/ssh-key` requests of a run with 429
REPLAY_SHARES = "replay-shares: {per-key: 100000, per-address: 100000}\n"


def server_config(db_url: str, port: int, workdir: Path) -> str:
    """The benchmarks' `lnvps serve` config: the limits that would refuse a load generator's
    traffic from one address and one user are lifted (orders, unpaid room, live quotes,
    replay shares); everything measured runs as configured by default."""
    return (
        f"db: {db_url}\nlisten: 127.0.0.1:{port}\nadmin-listen: 127.0.0.1:{free_port()}\n"
        f"max-unpaid-vms: {EXTRA_VMS + 5}\norder-rate: {{per-hour: 0}}\n"
        f"{NO_ROOM_LIMITS}"
        f"max-live-quotes: {LIVE_QUOTES_CAP}\n"
        f"{REPLAY_SHARES}"
        f"dev:\n  state-dir: {workdir}\n  enabled: true\n"  # a trial, on MariaDB too
    )


#: users the `POST /api/v1/ssh-key` run spreads its requests over: an account holds at most
#: `MAX_SSH_KEYS` keys (then 422), so each signer adds fewer than that in a run of `--pool`
SSH_KEY_SIGNERS = 1 + 20_000 // (MAX_SSH_KEYS - 10)


def ssh_signer(n: int) -> bytes:
    return hashlib.sha256(b"lnvps-bench-http-ssh-%d" % n).digest()


def sign(url: str, method: str, created_at: int, secret: bytes = SECRET) -> str:
    """A NIP-98 header with a random nonce tag, so that no two events share an id (D26)."""
    pubkey = PUBKEY_HEX if secret == SECRET else PublicKeyXOnly.from_secret(secret).format().hex()
    tags = [["u", url], ["method", method], ["nonce", secrets.token_hex(8)]]
    canonical = json.dumps([0, pubkey, created_at, 27235, tags, ""], separators=(",", ":")).encode()
    event_id = hashlib.sha256(canonical).digest()
    event = {
        "id": event_id.hex(),
        "pubkey": pubkey,
        "created_at": created_at,
        "kind": 27235,
        "tags": tags,
        "content": "",
        "sig": PrivateKey(secret).sign_schnorr(event_id).hex(),
    }
    return "Nostr " + base64.b64encode(json.dumps(event, separators=(",", ":")).encode()).decode()


def ssh_key_line(n: int) -> str:
    """A well-formed ed25519 public key line (random key bytes), comment `bench-n`."""

    def field(raw: bytes) -> bytes:
        return len(raw).to_bytes(4, "big") + raw

    blob = field(b"ssh-ed25519") + field(os.urandom(32))
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} bench-{n}"


def signed_pool(base: str, method: str, paths: Sequence[str], size: int) -> list[Req]:
    now = int(time.time())
    return [
        Req(method, paths[i % len(paths)], sign(base + paths[i % len(paths)], method, now))
        for i in range(size)
    ]


def ssh_key_pool(base: str, size: int) -> list[Req]:
    """Key additions signed in turn by `SSH_KEY_SIGNERS` users (seeded: known before the run),
    so that none reaches the per-account cap however far the pool is used."""
    now, out = int(time.time()), []
    signers = [ssh_signer(n) for n in range(SSH_KEY_SIGNERS)]
    for i in range(size):
        body = json.dumps({"name": f"bench-{i}", "key_data": ssh_key_line(i)})
        auth = sign(base + "/api/v1/ssh-key", "POST", now, signers[i % len(signers)])
        out.append(Req("POST", "/api/v1/ssh-key", auth, body))
    return out


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


@contextmanager
def process(args: Sequence[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """A server process, waited for until `ready_url` answers 200; terminated on exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=log.parent, env=_env(), stdout=out, stderr=out
        )
    try:
        asyncio.run(_wait_ready(ready_url, proc, log))
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as session:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{url} exited:\n" + _tail(log))
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(_tail(log))
            await asyncio.sleep(0.2)


# --- seeding ---------------------------------------------------------------------------------


@attrs.frozen
class Seeded:
    user_id: int
    vm_id: int
    new_invoice_paths: list[str]


async def _call(
    session: aiohttp.ClientSession,
    base: str,
    method: str,
    path: str,
    body: Any = None,
    secret: bytes = SECRET,
) -> Any:
    headers = {"Authorization": sign(base + path, method, int(time.time()), secret)}
    data = None if body is None else json.dumps(body)
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with session.request(method, base + path, data=data, headers=headers) as resp:
        payload = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: {resp.status} {payload}")
        return payload["data"]


async def seed(base: str, config: Path, db_url: str) -> Seeded:
    """A user with an SSH key, a paid VM with a live renewal invoice, and unpaid VMs."""
    async with aiohttp.ClientSession() as session:
        key = await _call(
            session, base, "POST", "/api/v1/ssh-key", {"name": "main", "key_data": ssh_key_line(0)}
        )
        async with session.get(base + "/api/v1/vm/templates") as resp:
            templates = (await resp.json())["data"]["templates"]
        template_id = templates[0]["id"]
        order = {"template_id": template_id, "image_id": 1, "ssh_key_id": key["id"]}
        vm_id = (await _call(session, base, "POST", "/api/v1/vm", order))["id"]
        first = await _call(session, base, "GET", f"/api/v1/vm/{vm_id}/renew?method=lightning")
        paid = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lnvps.cli",
            "--config",
            str(config),
            "dev",
            "pay",
            first["id"],
            cwd=config.parent,
            env=_env(),
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await paid.communicate()
        if paid.returncode != 0:
            raise RuntimeError(stderr.decode())
        for _ in range(300):
            payment = await _call(session, base, "GET", f"/api/v1/payment/{first['id']}")
            if payment["is_paid"]:
                break
            await asyncio.sleep(0.2)
        else:
            raise TimeoutError("the first payment was never settled")
        # the live renewal invoice the "reused" run gets back every time
        await _call(session, base, "GET", f"/api/v1/vm/{vm_id}/renew?method=lightning")
        vms = [vm_id]
        for _ in range(EXTRA_VMS):
            vms.append((await _call(session, base, "POST", "/api/v1/vm", order))["id"])
        # the ssh-key run's signers, known before it (a first request inserts the user)
        for n in range(SSH_KEY_SIGNERS):
            await _call(session, base, "GET", "/api/v1/ssh-key", secret=ssh_signer(n))
    new_paths = [
        f"/api/v1/vm/{v}/renew?method=lightning&intervals={n}"
        for n in NEW_INVOICE_INTERVALS
        for v in vms
    ]
    user_id = await _user_id(db_url)
    return Seeded(user_id=user_id, vm_id=vm_id, new_invoice_paths=new_paths)


async def _user_id(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT id FROM users WHERE pubkey = :pk"), {"pk": bytes.fromhex(PUBKEY_HEX)}
            )
            return int(found.scalar_one())
    finally:
        await engine.dispose()


# --- the runs --------------------------------------------------------------------------------


@attrs.frozen
class Row:
    name: str
    result: LoadResult
    pool: int  # distinct requests prepared (0: not relevant)
    goal: str = ""
    ratio: float | None = None
    ok: bool | None = None
    #: the server process's CPU time (user + system) per answered request, in ms
    cpu_ms: float | None = None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux `/proc`), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mariadb_pid() -> int | None:
    """The local MariaDB server's pid (None when it does not run here)."""
    try:
        return int(subprocess.check_output(["pidof", "mariadbd"]).split()[0])
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError):
        return None


#: a process is quiet below this share of one core, over QUIET_WINDOW seconds
QUIET_SHARE = 0.05
QUIET_WINDOW = 0.5
#: the longest wait for quiet before a run starts anyway (said in its line)
QUIET_WAIT = 20.0


def wait_for_quiet(pids: Sequence[int]) -> float:
    """Wait until `pids` (the server, MariaDB) are idle; the seconds waited. A write run
    leaves work behind (MariaDB purges the undo of the rows it wrote; SQLite checkpoints):
    the next row would otherwise share the cores with it (the catalogue rows after the
    write rows measured 58 % of the bare handler one run and 110 % the next)."""
    started = time.monotonic()
    while time.monotonic() - started < QUIET_WAIT:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(QUIET_WINDOW)
        if sum(cpu_seconds(p) for p in pids) - before < QUIET_SHARE * QUIET_WINDOW:
            break
    return time.monotonic() - started


def measure(
    name: str,
    base: str,
    reqs: Callable[[], list[Req]],
    *,
    connections: int,
    duration: float,
    pid: int | None = None,
) -> Row:
    """One run, once the server and MariaDB are idle; with the server's `pid`, also its CPU
    time per request: unlike req/s, that hardly moves with what else the machine runs."""
    prepared = reqs()
    distinct = len({r.auth for r in prepared}) if prepared[0].auth else 0
    database = mariadb_pid()
    watched = [p for p in (pid, database) if p is not None]
    waited = wait_for_quiet(watched) if watched else 0.0
    before = cpu_seconds(pid) if pid is not None else 0.0
    result = run_load(base, prepared, connections=connections, duration=duration)
    cpu = None
    if pid is not None and result.requests:
        cpu = (cpu_seconds(pid) - before) * 1000 / result.requests
    row = Row(name, result, distinct, cpu_ms=cpu)
    quiet = f", {waited:.1f} s waited for quiet" if waited > 2 * QUIET_WINDOW else ""
    print(f"  {name:<48} {_figures(row)}  (load {os.getloadavg()[0]:.1f}{quiet})", flush=True)
    return row


def _figures(row: Row) -> str:
    r = row.result
    wrapped = " (pool wrapped)" if row.pool and r.requests > row.pool else ""
    errors = f" {r.errors} errors" if r.errors else ""
    cpu = f"  cpu {row.cpu_ms:.3f} ms/req" if row.cpu_ms is not None else ""
    return (
        f"{r.rate:9.0f} req/s  p50 {r.p50_ms:7.1f} ms  p99 {r.p99_ms:7.1f} ms{cpu}{errors}{wrapped}"
    )


def judged(row: Row, reference: Row, share: float, label: str, p99_limit: float = 50.0) -> Row:
    ratio = row.result.rate / reference.result.rate if reference.result.rate else 0.0
    ok = ratio >= share and row.result.p99_ms < p99_limit and row.result.errors == 0
    goal = f">= {share:.0%} of {label}, p99 < {p99_limit:g} ms"
    return attrs.evolve(row, goal=goal, ratio=ratio, ok=ok)


def backend_runs(
    backend: str, db_url: str, bare: Row, args: argparse.Namespace, workdir: Path
) -> list[Row]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = workdir / "config.yaml"
    config.write_text(server_config(db_url, port, workdir))
    d, c = args.duration, args.connections
    rows: list[Row] = []
    serve = ["-m", "lnvps.cli", "--config", str(config), "serve"]
    with process(serve, workdir / "serve.log", base + "/api/v1/image") as server:
        seeded = asyncio.run(seed(base, config, db_url))
        vm_path = f"/api/v1/vm/{seeded.vm_id}"
        probe_port = free_port()
        probe_base = f"http://127.0.0.1:{probe_port}"
        probe_args = [
            "-m",
            "bench.http_probe",
            "probe",
            str(probe_port),
            db_url,
            str(seeded.user_id),
        ]
        with process(probe_args, workdir / "probe.log", probe_base + "/") as prober:
            probe = measure(
                f"probe ({backend}): GET /api/v1/vm/{{id}}",
                probe_base,
                lambda: signed_pool(probe_base, "GET", [vm_path], args.pool),
                connections=c,
                duration=d,
                pid=prober.pid,
            )
        rows.append(probe)
        get_vm = measure(
            f"lnvps ({backend}): GET /api/v1/vm/{{id}}",
            base,
            lambda: signed_pool(base, "GET", [vm_path], args.pool),
            connections=c,
            duration=d,
            pid=server.pid,
        )
        rows.append(judged(get_vm, probe, 0.60, "probe"))
        reused = measure(
            f"lnvps ({backend}): GET …/renew (reused invoice)",
            base,
            lambda: signed_pool(base, "GET", [vm_path + "/renew?method=lightning"], args.pool),
            connections=c,
            duration=d,
            pid=server.pid,
        )
        rows.append(judged(reused, probe, 0.40, "probe"))
        paths = seeded.new_invoice_paths
        fresh = measure(
            f"lnvps ({backend}): GET …/renew (new invoice)",
            base,
            lambda: signed_pool(base, "GET", paths, len(paths)),
            connections=c,
            duration=d,
            pid=server.pid,
        )
        rows.append(judged(fresh, probe, 0.20, "probe"))
        ssh = measure(
            f"lnvps ({backend}): POST /api/v1/ssh-key",
            base,
            lambda: ssh_key_pool(base, args.pool),
            connections=c,
            duration=d,
            pid=server.pid,
        )
        rows.append(judged(ssh, probe, 0.25, "probe"))
        for path in ("/api/v1/vm/templates", "/api/v1/image"):
            plain = [Req("GET", path)]
            row = measure(
                f"lnvps ({backend}): GET {path}",
                base,
                plain.copy,
                connections=c,
                duration=d,
                pid=server.pid,
            )
            rows.append(judged(row, bare, 0.60, "bare"))
        crowd = measure(
            f"lnvps ({backend}): GET /api/v1/vm/{{id}}, 200 conns {args.crowd_duration:g}s",
            base,
            lambda: signed_pool(base, "GET", [vm_path], args.pool),
            connections=200,
            duration=args.crowd_duration,
            pid=server.pid,
        )
        crowd_ok = crowd.result.errors == 0 and crowd.result.p99_ms < 1000
        rows.append(attrs.evolve(crowd, goal="all answered, p99 < 1 s", ok=crowd_ok))
    return rows


@contextmanager
def database(backend: str, server: str, workdir: Path, keep: bool) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    name = "lnvps_bench_http_" + secrets.token_hex(4)
    admin = normalize_db_url(server).render_as_string(hide_password=False)
    asyncio.run(_admin_sql(admin, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            asyncio.run(_admin_sql(admin, f"DROP DATABASE IF EXISTS `{name}`"))


async def _admin_sql(url: str, sql: str) -> None:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def report(rows: Sequence[Row]) -> bool:
    print()
    print(
        f"{'request':<58} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>7} {'ratio':>7}  goal"
    )
    for row in rows:
        r = row.result
        ratio = f"{row.ratio:7.1%}" if row.ratio is not None else " " * 7
        cpu = f"{row.cpu_ms:7.3f}" if row.cpu_ms is not None else " " * 7
        mark = "" if row.ok is None else (" OK" if row.ok else " MISSED")
        print(
            f"{row.name:<58} {r.rate:8.0f} {r.p50_ms:8.1f} {r.p99_ms:8.1f} {cpu} {ratio}  "
            f"{row.goal}{mark}"
        )
    judged_rows = [r for r in rows if r.ok is not None]
    met = sum(1 for r in judged_rows if r.ok)
    print(f"\ngoals met: {met}/{len(judged_rows)}")
    return met == len(judged_rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__)
    parser.add_argument("--backends", default="sqlite,mysql", help="comma list: sqlite,mysql")
    parser.add_argument("--db", default=DEFAULT_SERVER, help="MariaDB server URL, no database")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run (8)")
    parser.add_argument("--crowd-duration", type=float, default=20.0, help="200-client run (20)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pool", type=int, default=20000, help="signed events per run")
    parser.add_argument("--keep", action="store_true", help="keep work dirs and databases")
    args = parser.parse_args(argv)
    print(
        f"load generator: {generator_name()}; {args.connections} connections, "
        f"{args.duration:g} s per run; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="lnvps-bench-http-") as tmp:
        root = Path(tmp)
        bare_port = free_port()
        bare_base = f"http://127.0.0.1:{bare_port}"
        with process(
            ["-m", "bench.http_probe", "bare", str(bare_port)], root / "bare.log", bare_base + "/"
        ):
            for backend in args.backends.split(","):
                # the yardstick again before each backend: the machine's load drifts
                bare = measure(
                    f"bare aiohttp JSON handler (before {backend})",
                    bare_base,
                    lambda: [Req("GET", "/")],
                    connections=args.connections,
                    duration=args.duration,
                )
                rows.append(bare)
                workdir = root / backend
                workdir.mkdir()
                with database(backend, args.db, workdir, args.keep) as db_url:
                    rows.extend(backend_runs(backend, db_url, bare, args, workdir))
        ok = report(rows)
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix="lnvps-bench-http-kept-"))
            subprocess.run(["cp", "-r", tmp + "/.", str(kept)], check=False)
            print(f"work dirs kept in {kept}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
