"""Issue 8 §8: `lnvps migrate-legacy-billing` SIGKILLed mid-run on a large legacy database, then
rerun: the result equals a clean single run's (every VM linked once, every payment copied once
byte for byte, no duplicates, no orphan rows), on SQLite and MariaDB.

Two kills on one database: one in Phase 1 (some VM batches linked, not all) and one in Phase 2
(some payments copied, not all); the moments are found by polling the database, the process
is killed with SIGKILL (no cleanup runs), and the next run must pick up where it stopped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.contract.legacy_fixtures import INVALID_PARAMS_ID
from tests.dbtest import copy_database, create_mysql_database, drop_mysql_database, sqlite_url_for
from tests.e2e.forked import ForkedProcess, start_lnvps
from tests.e2e.kill9_support import fetch, poll, sigkill
from tests.e2e.legacy_bulk import build_bulk_legacy_db
from tests.e2e.serve_process import lnvps_in_process

VMS = 6000
PAYMENTS_PER_VM = 4
#: the killed runs' batch sizes (the clean run and the rerun use the defaults)
SMALL_BATCHES = ("--vm-batch", "250", "--payment-batch", "1000")
#: columns a copy must carry over exactly as the legacy row holds them (B5)
COPIED = (
    "id",
    "created",
    "expires",
    "amount",
    "currency",
    "payment_method",
    "external_data",
    "external_id",
    "is_paid",
    "tax",
    "processing_fee",
    "paid_at",
)


@asynccontextmanager
async def _database(engine: str, tmp_path: Path, name: str) -> AsyncIterator[str]:
    if engine == "sqlite":
        yield sqlite_url_for(tmp_path / f"{name}.db")
        return
    database, url = await create_mysql_database()
    try:
        yield url
    finally:
        await drop_mysql_database(database)


async def _start_backfill(url: str, log: Path, *batches: str) -> ForkedProcess:
    """`lnvps --db URL migrate-legacy-billing`, a process of its own (`tests.e2e.forked`)."""
    argv = ["--db", url, "migrate-legacy-billing", *batches]
    return await start_lnvps(argv, cwd=log.parent, log=log)


async def _run_backfill(url: str, log: Path) -> tuple[int, str]:
    process = await _start_backfill(url, log)
    code = await asyncio.wait_for(process.wait(), timeout=120)
    return code, await asyncio.to_thread(log.read_text)


async def _count(url: str, query: str) -> int:
    return int((await fetch(url, query))[0]["n"])


async def _linked(url: str) -> int:
    return await _count(
        url, "SELECT COUNT(*) AS n FROM vm WHERE subscription_line_item_id IS NOT NULL"
    )


async def _copied(url: str) -> int:
    return await _count(url, "SELECT COUNT(*) AS n FROM subscription_payment")


async def _kill_when(
    url: str, log: Path, what: str, reached: Callable[[], Awaitable[bool]]
) -> None:
    """Start a backfill and SIGKILL it as soon as `reached()`; it must not finish first.
    Small batches (many commits) keep each phase's midway open for longer than a poll: with
    the default ones a fast machine copied every payment between two polls."""
    process = await _start_backfill(url, log, *SMALL_BATCHES)

    async def caught() -> bool:
        if process.returncode is not None:
            raise AssertionError(f"the backfill ended ({process.returncode}) before {what}")
        return await reached()

    try:
        await poll(what, caught, seconds=60)
    finally:
        await sigkill(process)


async def _no_partial_vm(url: str, other_subs: int) -> None:
    """Whatever moment the kill hit: no subscription or line item without its linked VM."""
    subs = await _count(url, "SELECT COUNT(*) AS n FROM subscription")
    items = await _count(url, "SELECT COUNT(*) AS n FROM subscription_line_item")
    linked = await _linked(url)
    assert subs == items == linked + other_subs
    doubled = await fetch(
        url,
        "SELECT subscription_line_item_id FROM vm WHERE subscription_line_item_id IS NOT NULL "
        "GROUP BY subscription_line_item_id HAVING COUNT(*) > 1",
    )
    assert not doubled


async def _canonical(url: str) -> dict[str, Any]:
    """The database without surrogate keys: each VM with its subscription and line item, each
    payment with the VM (or pre-existing subscription) it belongs to, raw values."""
    vms = await fetch(url, "SELECT * FROM vm ORDER BY id")
    items = {r["id"]: r for r in await fetch(url, "SELECT * FROM subscription_line_item")}
    subs = {r["id"]: r for r in await fetch(url, "SELECT * FROM subscription")}
    owner: dict[Any, str] = {}
    linked = []
    for vm in vms:
        item = items.pop(vm["subscription_line_item_id"])
        sub = subs.pop(item["subscription_id"])
        owner[sub["id"]] = f"vm {vm['id']}"
        linked.append(
            (
                _without(vm, "subscription_line_item_id"),
                _without(item, "id", "subscription_id"),
                _without(sub, "id"),
            )
        )
    pre_existing = sorted(subs.items())
    for sub_id in subs:
        owner[sub_id] = f"subscription {sub_id}"
    assert not [i for i in items.values() if i["subscription_id"] not in subs], "orphan items"
    payments = [
        (owner[p["subscription_id"]], _without(p, "subscription_id"))
        for p in await fetch(url, "SELECT * FROM subscription_payment ORDER BY id")
    ]
    return {"vms": linked, "other": pre_existing, "payments": payments}


def _without(row: dict[str, Any], *keys: str) -> tuple[Any, ...]:
    return tuple(sorted((k, v) for k, v in row.items() if k not in keys))


async def _copied_byte_for_byte(url: str) -> None:
    legacy = {r["id"]: r for r in await fetch(url, "SELECT * FROM vm_payment")}
    copies = {r["id"]: r for r in await fetch(url, "SELECT * FROM subscription_payment")}
    assert set(legacy) <= set(copies)  # the invalid-params row too, its text kept (R3)
    assert json.loads(copies[INVALID_PARAMS_ID]["metadata"]) == {
        "legacy_upgrade_params": legacy[INVALID_PARAMS_ID]["upgrade_params"]
    }
    for payment_id, old in legacy.items():
        new = copies[payment_id]
        assert {c: new[c] for c in COPIED} == {c: old[c] for c in COPIED}, payment_id


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
async def test_kill9_during_the_legacy_backfill_then_rerun_equals_a_clean_run(
    engine: str, tmp_path: Path
) -> None:
    async with (
        _database(engine, tmp_path, "clean") as clean,
        _database(engine, tmp_path, "killed") as killed,
    ):
        await build_bulk_legacy_db(clean, VMS, PAYMENTS_PER_VM)
        await copy_database(clean, killed)  # the same rows and ids, built once
        vms = await _count(killed, "SELECT COUNT(*) AS n FROM vm")
        legacy_payments = await _count(killed, "SELECT COUNT(*) AS n FROM vm_payment")
        pre_existing = await _copied(killed)  # a non-VM subscription's payment (R6)
        other_subs = await _count(killed, "SELECT COUNT(*) AS n FROM subscription")
        assert vms > VMS and legacy_payments > VMS * PAYMENTS_PER_VM

        # the reference result: one uninterrupted run (in-process: no kill, no new interpreter)
        clean_run = await asyncio.to_thread(
            lnvps_in_process, "--db", clean, "migrate-legacy-billing"
        )
        clean_code, clean_report = clean_run.returncode, clean_run.stdout + clean_run.stderr
        assert clean_code == 0, clean_report  # invalid upgrade_params: a warning only (R3)

        async def phase1_midway() -> bool:
            return 0 < await _linked(killed) < vms

        await _kill_when(
            killed, tmp_path / "phase1.log", "Phase 1 to have linked some VM batches", phase1_midway
        )
        await _no_partial_vm(killed, other_subs)
        assert await _copied(killed) == pre_existing  # Phase 2 never started

        async def phase2_midway() -> bool:
            copied = await _copied(killed) - pre_existing
            return 0 < copied < legacy_payments

        await _kill_when(
            killed, tmp_path / "phase2.log", "Phase 2 to have copied some payments", phase2_midway
        )
        await _no_partial_vm(killed, other_subs)
        assert await _linked(killed) == vms  # Phase 1 finished before Phase 2 began

        code, report = await _run_backfill(killed, tmp_path / "rerun.log")
        assert code == clean_code, report
        assert await _canonical(killed) == await _canonical(clean)
        await _no_partial_vm(killed, other_subs)
        await _copied_byte_for_byte(killed)
