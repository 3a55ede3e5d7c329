"""Benchmark: the legacy backfill against a plain `INSERT … SELECT` copy on a synthetic database."""

from __future__ import annotations

import argparse
import asyncio
import resource
import secrets
import time
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.engine import make_url

from adapters.mysql.engine import create_engine, normalize_db_url
from adapters.mysql.legacy_backfill import migrate_legacy_billing
from adapters.mysql.migrations import R1_LEGACY
from adapters.mysql.schema_upgrade import upgrade_database
from domain.legacy import BackfillReport

DEFAULT_SERVER = "mysql://root@127.0.0.1:3306/"

CATALOGUE = [
    "INSERT INTO vm_host_region (id, name, enabled, company_id) VALUES (1, 'eu', 1, 1)",
    "INSERT INTO vm_host (id, kind, region_id, name, ip, cpu, memory, enabled, api_token) "
    "VALUES (1, 65535, 1, 'h', 'https://h', 64, 274877906944, 1, 'ENC:x')",
    "INSERT INTO vm_host_disk (id, host_id, name, size, kind, interface, enabled) "
    "VALUES (1, 1, 'ssd', 4398046511104, 1, 2, 1)",
    "INSERT INTO vm_os_image (id, distribution, flavour, version, enabled, release_date, url) "
    "VALUES (1, 1, 'server', '12', 1, NOW(), 'https://img')",
    "INSERT INTO vm_cost_plan (id, name, amount, currency, interval_amount, interval_type) "
    "VALUES (1, 'm', 500, 'EUR', 1, 1), (2, 'y', 5000, 'EUR', 1, 2), (3, 'd', 20, 'EUR', 7, 0)",
    "INSERT INTO vm_template (id, name, enabled, cpu, memory, disk_size, disk_type, "
    "disk_interface, cost_plan_id, region_id) VALUES (1, 'Tiny', 1, 1, 1073741824, 10737418240,"
    " 1, 2, 1, 1), (2, 'Big', 1, 8, 17179869184, 107374182400, 1, 2, 2, 1), (3, 'Daily', 1, 1,"
    " 1073741824, 10737418240, 1, 2, 3, 1)",
    "INSERT INTO vm_custom_pricing (id, name, enabled, region_id, currency, cpu_cost, "
    "memory_cost, ip4_cost, ip6_cost) VALUES (1, 'c', 1, 1, 'EUR', 100, 50, 100, 0)",
    "INSERT INTO vm_custom_template (id, cpu, memory, disk_size, disk_type, disk_interface, "
    "pricing_id) VALUES (1, 4, 8589934592, 85899345920, 1, 2, 1)",
    "CREATE TABLE bench_digits (d INT PRIMARY KEY)",
    "INSERT INTO bench_digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)",
    "CREATE TABLE bench_numbers (n INT PRIMARY KEY)",
]

USERS = 1000

VMS = (
    "INSERT INTO vm (id, host_id, user_id, image_id, template_id, custom_template_id, ssh_key_id,"
    " created, expires, disk_id, mac_address, deleted, auto_renewal_enabled) "
    "SELECT n + 1, 1, 1 + n % {users}, 1, IF(n % 10 = 9, NULL, 1 + n % 3), "
    "IF(n % 10 = 9, 1, NULL), 1 + n % {users}, NOW() - INTERVAL 400 DAY, "
    "NOW() + INTERVAL (n % 400) - 200 DAY, 1, '52:54:00:00:00:01', n % 7 = 0, n % 3 = 0 "
    "FROM bench_numbers WHERE n < :vms"
)

PAYMENTS = (
    "INSERT INTO vm_payment (id, vm_id, created, expires, amount, external_data, time_value, "
    "is_paid, rate, currency, payment_method, external_id, tax, payment_type, upgrade_params, "
    "processing_fee, paid_at) "
    "SELECT UNHEX(SHA2(n, 256)), 1 + n % :vms, NOW() - INTERVAL n % 500 DAY, "
    "NOW() - INTERVAL n % 500 DAY + INTERVAL 10 MINUTE, 100000 + n % 1000, "
    "IF(n % 2 = 0, CONCAT('ENC:', TO_BASE64(UNHEX(SHA2(n, 512)))), CONCAT('lnbc', n, 'n1p')), "
    "IF(n % 20 = 0, 0, 2592000), n % 4 <> 0, 92000.5, 'BTC', n % 2, "
    "IF(n % 2 = 1, CONCAT('ord-', n), NULL), n % 100, IF(n % 20 = 0, 1, 0), "
    'IF(n % 20 = 0, \'{"new_cpu": 4, "new_memory": 8589934592}\', NULL), 0, '
    "IF(n % 4 <> 0, NOW() - INTERVAL n % 500 DAY + INTERVAL 5 MINUTE, NULL) "
    "FROM bench_numbers WHERE n < :payments"
)

PLAIN = [
    # (b) the plain copy: one INSERT … SELECT per table, no validation, ids by arithmetic
    "INSERT INTO subscription (id, user_id, company_id, name, description, created, expires, "
    "is_active, is_setup, currency, interval_amount, interval_type, setup_fee, "
    "auto_renewal_enabled) SELECT v.id + :offset, v.user_id, r.company_id, "
    "CONCAT('VM ', v.id, ' Subscription'), CONCAT('VM ', v.id), v.created, v.expires, "
    "NOT v.deleted, 1, c.base_currency, COALESCE(cp.interval_amount, 1), "
    "COALESCE(cp.interval_type, 1), 0, v.auto_renewal_enabled FROM vm v "
    "JOIN vm_host h ON h.id = v.host_id JOIN vm_host_region r ON r.id = h.region_id "
    "JOIN company c ON c.id = r.company_id LEFT JOIN vm_template t ON t.id = v.template_id "
    "LEFT JOIN vm_cost_plan cp ON cp.id = t.cost_plan_id",
    "INSERT INTO subscription_line_item (id, subscription_id, subscription_type, name, amount, "
    "setup_amount) SELECT s.id, s.id, 3, s.description, 0, 0 FROM subscription s "
    "WHERE s.id > :offset",
    "UPDATE vm SET subscription_line_item_id = id + :offset",
    "INSERT INTO subscription_payment (id, subscription_id, user_id, created, expires, amount, "
    "currency, payment_method, payment_type, external_data, external_id, is_paid, rate, "
    "time_value, metadata, tax, processing_fee, paid_at) SELECT vp.id, v.id + :offset, "
    "v.user_id, vp.created, vp.expires, vp.amount, vp.currency, vp.payment_method, "
    "vp.payment_type + 1, vp.external_data, vp.external_id, vp.is_paid, vp.rate, "
    "NULLIF(vp.time_value, 0), vp.upgrade_params, vp.tax, vp.processing_fee, vp.paid_at "
    "FROM vm_payment vp JOIN vm v ON v.id = vp.vm_id",
]


CHUNK = 5000


async def plain_chunked(url: str) -> None:
    """(b') the same plain statements, payments copied per id range of CHUNK rows.

    One giant INSERT … SELECT pays for a transaction larger than a small buffer pool; this
    variant is the stricter baseline (same chunking as the backfill, none of its checks).
    """
    await run_sql(url, PLAIN[:3], offset=10_000_000)
    engine = create_engine(url)
    copy = PLAIN[3] + " WHERE vp.id > :low AND (:high IS NULL OR vp.id <= :high)"
    bound = "SELECT id FROM vm_payment WHERE id > :low ORDER BY id LIMIT 1 OFFSET :skip"
    try:
        async with engine.connect() as conn:
            low = b""
            while True:
                high = (await conn.execute(text(bound), {"low": low, "skip": CHUNK - 1})).scalar()
                params = {"offset": 10_000_000, "low": low, "high": high}
                await conn.execute(text(copy), params)
                await conn.commit()
                if high is None:
                    break
                low = high
    finally:
        await engine.dispose()


def peak_rss_mib() -> float:
    """The process's resident-set high-water mark (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_sql(url: str, statements: Sequence[str], **params: int) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for sql in statements:
                await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


async def generate(url: str, vms: int, payments: int) -> float:
    """Create the legacy (r1) shape and fill it server-side; returns seconds taken."""
    started = time.perf_counter()
    await upgrade_database(url, R1_LEGACY)
    digits = " CROSS JOIN ".join(f"bench_digits d{i}" for i in range(7))
    number = " + ".join(f"d{i}.d * {10**i}" for i in range(7))
    await run_sql(url, CATALOGUE)
    await run_sql(
        url,
        [
            f"INSERT INTO bench_numbers SELECT {number} FROM {digits} "
            f"WHERE {number} < {max(vms, payments, USERS)}",
            "INSERT INTO users (id, pubkey, contact_nip17, contact_email) "
            "SELECT n + 1, UNHEX(SHA2(CONCAT('u', n), 256)), 1, 0 FROM bench_numbers "
            f"WHERE n < {USERS}",
            "INSERT INTO user_ssh_key (id, name, user_id, key_data) "
            f"SELECT n + 1, 'k', n + 1, 'ssh-ed25519 AAAA' FROM bench_numbers WHERE n < {USERS}",
        ],
    )
    await run_sql(url, [VMS.format(users=USERS)], vms=vms)
    await run_sql(url, [PAYMENTS], vms=vms, payments=payments)
    await upgrade_database(url)  # as an operator would: r2 … head, then the backfill
    return time.perf_counter() - started


async def fresh_database(server: str, vms: int, payments: int) -> tuple[str, str]:
    """A new throwaway database with the synthetic legacy data, upgraded to head."""
    name = "lnvps_bench_" + secrets.token_hex(4)
    admin = normalize_db_url(server).render_as_string(hide_password=False)
    await run_sql(admin, [f"CREATE DATABASE `{name}`"])
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    seconds = await generate(url, vms, payments)
    print(f"database {name}: {vms} VMs, {payments} payments generated in {seconds:.1f}s")
    return name, url


async def drop(server: str, names: Sequence[str]) -> None:
    admin = normalize_db_url(server).render_as_string(hide_password=False)
    await run_sql(admin, [f"DROP DATABASE IF EXISTS `{name}`" for name in names])


async def bench(server: str, vms: int, payments: int, keep: bool) -> None:
    """(a) and (b) each run on a freshly generated copy of the same data.

    Resetting one database with DELETE would leave delete-marked index records and a purge
    backlog that slow down whichever run comes second, so each run gets its own database.
    """
    names: list[str] = []
    rows = vms + payments
    try:
        name, url = await fresh_database(server, vms, payments)
        names.append(name)
        rss_before = peak_rss_mib()
        started = time.perf_counter()
        report: BackfillReport = await migrate_legacy_billing(url, dry_run=False)
        ours = time.perf_counter() - started
        rss_after = peak_rss_mib()
        print(report.summary().splitlines()[0])
        name, url = await fresh_database(server, vms, payments)
        names.append(name)
        started = time.perf_counter()
        await run_sql(url, PLAIN, offset=10_000_000)
        plain = time.perf_counter() - started
        name, url = await fresh_database(server, vms, payments)
        names.append(name)
        started = time.perf_counter()
        await plain_chunked(url)
        chunked = time.perf_counter() - started
        print(f"(a)  migrate_legacy_billing:        {ours:8.2f}s  {rows / ours:12,.0f} rows/s")
        print(f"(b)  plain INSERT … SELECT:         {plain:8.2f}s  {rows / plain:12,.0f} rows/s")
        print(
            f"(b') plain, per {CHUNK}-row id range: {chunked:8.2f}s  {rows / chunked:12,.0f} rows/s"
        )
        print(
            f"ratio ours/plain speed: {plain / ours:.2f} vs (b), {chunked / ours:.2f} vs (b')"
            "  (goal ≥ 0.50)"
        )
        print(f"peak RSS: {rss_before:.0f} MiB before the backfill, {rss_after:.0f} MiB after")
        ok = report.vms_linked == vms and report.payments_copied == payments and report.ok
        print("backfill counts: " + ("OK" if ok else f"UNEXPECTED {report}"))
    finally:
        if not keep:
            await drop(server, names)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__)
    parser.add_argument("--vms", type=int, default=100_000)
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--db", default=DEFAULT_SERVER, help="MariaDB server URL (no database)")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    args = parser.parse_args(argv)
    if args.vms < 1 or args.payments < 0 or max(args.vms, args.payments) >= 10**7:
        parser.error("--vms must be 1..9 999 999 and --payments 0..9 999 999")
    asyncio.run(bench(args.db, args.vms, args.payments, args.keep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
