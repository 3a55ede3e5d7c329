"""Benchmark: one `check_subscriptions` pass over a huge and a small table, same due work."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.memory.clock import FakeClock
from adapters.mysql.engine import create_engine, normalize_db_url, statement_engines
from adapters.mysql.schema_upgrade import upgrade_database
from adapters.mysql.uow import SqlUnitOfWorkFactory
from adapters.notify.memory import RecordingNotifier
from adapters.queue.memory import InProcessQueue
from adapters.vmhost.dummy import DummyVmHost
from adapters.vmhost.dummy_state import MockVm
from app.worker.context import WorkerDeps
from app.worker.lifecycle import LifecycleReport, check_subscriptions
from domain.lifecycle import EXPIRING_SOON_LEAD
from domain.model import Host
from ports.storage import DueWindow
from ports.vmhost import VmHost, VmRunState

DEFAULT_SERVER = "mysql://root@127.0.0.1:3306/"
USERS = 1000
#: the benchmark's "now": whole seconds, UTC (SQL keeps whole seconds)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

CATALOGUE = [
    "INSERT INTO vm_host_region (id, name, enabled, company_id) VALUES (1, 'eu', 1, 1)",
    "INSERT INTO vm_host (id, kind, region_id, name, ip, cpu, memory, enabled, api_token) "
    "VALUES (1, 65535, 1, 'dummy', 'https://h', 64, 274877906944, 1, '')",
    "INSERT INTO vm_host_disk (id, host_id, name, size, kind, interface, enabled) "
    "VALUES (1, 1, 'ssd', 4398046511104, 1, 2, 1)",
    "INSERT INTO vm_os_image (id, distribution, flavour, version, enabled, release_date, url) "
    "VALUES (1, 1, 'server', '12', 1, NOW(), 'https://img')",
    "INSERT INTO vm_cost_plan (id, name, amount, currency, interval_amount, interval_type) "
    "VALUES (1, 'm', 500, 'EUR', 1, 1)",
    "INSERT INTO vm_template (id, name, enabled, cpu, memory, disk_size, disk_type, "
    "disk_interface, cost_plan_id, region_id) VALUES (1, 'Tiny', 1, 1, 1073741824, 10737418240,"
    " 1, 2, 1, 1)",
    "CREATE TABLE bench_digits (d INT PRIMARY KEY)",
    "INSERT INTO bench_digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)",
    "CREATE TABLE bench_numbers (n INT PRIMARY KEY)",
]

#: `:due` expired active subscriptions (ids 1 … due), the rest paid far into the future.
SUBSCRIPTIONS = (
    "INSERT INTO subscription (id, user_id, company_id, name, created, expires, is_active,"
    " is_setup, currency, interval_amount, interval_type) "
    "SELECT n + 1, n % {users} + 1, 1, 'VPS', :created,"
    " IF(n < :due, :expired, :future + INTERVAL n SECOND), 1, 1, 'EUR', 1, 1 "
    "FROM bench_numbers WHERE n < :total"
)
DUE_ROWS = [
    "INSERT INTO subscription_line_item (id, subscription_id, subscription_type, name, amount) "
    "SELECT n + 1, n + 1, 3, 'Tiny', 500 FROM bench_numbers WHERE n < :due",
    "INSERT INTO vm (id, host_id, user_id, image_id, template_id, ssh_key_id, disk_id,"
    " mac_address, subscription_line_item_id) "
    "SELECT n + 1, 1, n % {users} + 1, 1, 1, n % {users} + 1, 1,"
    " CONCAT('52:54:00:', LPAD(HEX(n DIV 65536), 2, '0'), ':',"
    " LPAD(HEX((n DIV 256) % 256), 2, '0'), ':', LPAD(HEX(n % 256), 2, '0')), n + 1 "
    "FROM bench_numbers WHERE n < :due",
]


async def run_sql(url: str, statements: Sequence[str], **params: Any) -> None:
    """Each statement in one transaction, foreign-key and unique checks off (bulk load)."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SET SESSION foreign_key_checks = 0, unique_checks = 0"))
            for sql in statements:
                await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


def _naive(when: datetime) -> datetime:
    """The UTC wall time the SQL sessions store (they run with time_zone '+00:00')."""
    return when.astimezone(UTC).replace(tzinfo=None)


async def generate(url: str, total: int, due: int) -> float:
    """Schema at head, then `total` subscriptions server-side; returns seconds taken."""
    started = time.perf_counter()
    await upgrade_database(url)
    digits = max(1, len(str(max(total, USERS) - 1)))
    joined = " CROSS JOIN ".join(f"bench_digits d{i}" for i in range(digits))
    number = " + ".join(f"d{i}.d * {10**i}" for i in range(digits))
    await run_sql(url, CATALOGUE)
    await run_sql(
        url,
        [
            f"INSERT INTO bench_numbers SELECT {number} FROM {joined}"
            f" WHERE {number} < {max(total, USERS)}",
            "INSERT INTO users (id, pubkey, contact_nip17, contact_email) "
            "SELECT n + 1, UNHEX(SHA2(CONCAT('u', n), 256)), 1, 0 FROM bench_numbers "
            f"WHERE n < {USERS}",
            "INSERT INTO user_ssh_key (id, name, user_id, key_data) "
            f"SELECT n + 1, 'k', n + 1, 'ssh-ed25519 AAAA' FROM bench_numbers WHERE n < {USERS}",
        ],
    )
    await run_sql(
        url,
        [SUBSCRIPTIONS.format(users=USERS)],
        total=total,
        due=due,
        created=_naive(NOW - timedelta(days=40)),
        expired=_naive(NOW - timedelta(hours=1)),
        future=_naive(NOW + timedelta(days=365)),
    )
    await run_sql(url, [sql.format(users=USERS) for sql in DUE_ROWS], due=due)
    await run_sql(url, ["ANALYZE TABLE subscription"])
    return time.perf_counter() - started


class OneHost:
    """Every host row served by the same (dummy) client."""

    def __init__(self, client: VmHost) -> None:
        self.client = client

    def for_host(self, host: Host) -> VmHost:
        return self.client


@attrs.frozen
class Measured:
    total: int
    due: int
    generated_s: float
    pass_s: float
    report: LifecycleReport
    stops: int
    list_due_ms: float
    statements: int
    commits: int


async def measure(server: str, total: int, due: int, keep: bool, trace: bool = False) -> Measured:
    """A fresh database of `total` subscriptions (`due` of them due) and one timed pass."""
    name = "lnvps_bench_cs_" + secrets.token_hex(4)
    admin = normalize_db_url(server).render_as_string(hide_password=False)
    await run_sql(admin, [f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"])
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        generated = await generate(url, total, due)
        print(f"database {name}: {total:,} subscriptions ({due:,} due) in {generated:.1f}s")
        clock = FakeClock(NOW)
        host = DummyVmHost(None, clock)
        host._vms.update({i: MockVm(state=VmRunState.RUNNING) for i in range(1, due + 1)})
        engine = create_engine(url)
        try:
            deps = WorkerDeps(
                uow_factory=SqlUnitOfWorkFactory(engine, AesGcmSecretBox(os.urandom(32))),
                clock=clock,
                hosts=OneHost(host),
                queue=InProcessQueue(),
                notifier=RecordingNotifier(),
            )
            counts = Counter[str]()

            def count_statement(*args: Any) -> None:
                counts["statements"] += 1
                if trace:
                    print("   ", " ".join(str(args[2]).split())[:150])

            def count_commit(*_: Any) -> None:
                counts["commits"] += 1

            engines = statement_engines(engine)  # a SQLite file's units of work: its twin
            for target in engines:
                event.listen(target, "before_cursor_execute", count_statement)
                event.listen(target, "commit", count_commit)
            started = time.perf_counter()
            report = await check_subscriptions(deps)
            seconds = time.perf_counter() - started
            for target in engines:
                event.remove(target, "before_cursor_execute", count_statement)
                event.remove(target, "commit", count_commit)
            # the same rows are still due after the pass (active, expired): the same read
            list_due_ms = await time_list_due(deps)
        finally:
            await engine.dispose()
        stops = sum(1 for vm in host._vms.values() if vm.state is VmRunState.STOPPED)
        return Measured(
            total,
            due,
            generated,
            seconds,
            report,
            stops,
            list_due_ms,
            counts["statements"],
            counts["commits"],
        )
    finally:
        if not keep:
            await run_sql(admin, [f"DROP DATABASE IF EXISTS `{name}`"])


async def time_list_due(deps: WorkerDeps) -> float:
    """Milliseconds of the pass's size-dependent read: one page of due subscriptions."""
    started = time.perf_counter()
    async with deps.uow_factory() as uow:
        await uow.subscriptions.list_due(
            DueWindow(deps.clock.now(), EXPIRING_SOON_LEAD), deps.due_page
        )
    return (time.perf_counter() - started) * 1000


def describe(label: str, m: Measured) -> str:
    done = Counter(d.action.value for d in m.report.done)
    actions = ", ".join(f"{k} {v}" for k, v in sorted(done.items()))
    return (
        f"{label}: {m.total:>10,} subscriptions, {m.due:,} due: one pass {m.pass_s:7.2f}s"
        f"  ({actions}; {len(m.report.failed)} failed; {m.stops} VMs stopped on the host;"
        f" list_due alone {m.list_due_ms:.0f} ms)\n"
        f"       {m.pass_s / m.due * 1000:.1f} ms, {m.statements / m.due:.1f} statements and"
        f" {m.commits / m.due:.1f} commits per due subscription"
    )


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default=DEFAULT_SERVER, help="server URL, no database")
    parser.add_argument("--big", type=int, default=1_000_000, help="subscriptions, big table")
    parser.add_argument("--small", type=int, default=10_000, help="subscriptions, small table")
    parser.add_argument("--due", type=int, default=1_000, help="due (expired) subscriptions")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--trace", action="store_true", help="print the pass's statements")
    args = parser.parse_args(argv)
    if not 0 < args.due <= min(args.big, args.small):
        parser.error("--due must be positive and at most --small and --big")
    big = await measure(args.db, args.big, args.due, args.keep, args.trace)
    small = await measure(args.db, args.small, args.due, args.keep, args.trace)
    print(describe("big  ", big))
    print(describe("small", small))
    ratio = big.pass_s / small.pass_s
    size = args.big / args.small
    print(f"ratio big/small: {ratio:.2f} for a {size:,.0f}x larger table (goal: close to 1)")
    expected = 2 * args.due  # STOP_ON_EXPIRY and DEACTIVATE_ADDONS per due subscription
    ok = all(len(m.report.done) == expected and m.stops == args.due for m in (big, small))
    print("due work done: " + ("OK" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
