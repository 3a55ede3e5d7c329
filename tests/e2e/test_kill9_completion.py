"""Issue 8 §8: `lnvps serve` SIGKILLed while settled payments are being completed, then restarted:
every settled invoice is paid exactly once, each subscription's expiry is the calendar sum of
what was paid (D6: N months from the expiry at each completion), one PaymentReceived and one
Renewed history row per payment, every VM running with its addresses, no stray rows.

Driven like an operator would: orders and renewals over HTTP, a burst of settlements on the
dev rail's settlement file (what `lnvps dev pay` writes), SIGKILL, restart; the verdict is read
from the database. Four kill points, on SQLite and on MariaDB:

1. *in the middle of a completion*: a trigger makes `vm_history` inserts hang, so the first
   completion is stuck writing the payment's history; the server is killed right there (the
   trigger is dropped before the restart). Before the fix the history was written in its own
   transaction after the booking, and such a kill left a paid payment without history for good;
2. *in the middle of a paid VM's spawn*: `vm_ip_assignment` inserts hang, so the VM is built
   and started on its host but its addresses are not saved when the server dies;
3. after about half of a renewal burst was seen paid;
4. right after the restarted server completed one more payment (during its replay).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
from sqlalchemy import select

from adapters.lightning.dev import DevLightningNode
from adapters.mysql import tables as t
from domain.enums import IntervalType, VmHistoryActionType
from domain.intervals import Interval
from tests.e2e.kill9_support import fetch, poll, sigkill, stalled_inserts
from tests.e2e.serve_process import RunningServer, running_server
from tests.nostr_signing import NostrKey

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4 k9"
USERS = [NostrKey.from_seed(9100 + i) for i in range(4)]
VMS_PER_USER = 3  # D25: at most 3 never-paid VMs per user
# 12 orders from one address: the per-address order limit (D25) is off here
FAST_WORKER = "worker:\n  check-interval: 1\norder-rate:\n  per-hour: 0\n"
MONTH = Interval(IntervalType.MONTH)


@attrs.define
class Ledger:
    """What the test asked for: VMs (id → owner) and invoices (payment id → VM, intervals)."""

    owner: dict[int, NostrKey] = attrs.field(factory=dict)
    invoices: dict[str, tuple[int, int]] = attrs.field(factory=dict)
    settled: set[str] = attrs.field(factory=set)


async def _order_vms(server: RunningServer, ledger: Ledger) -> None:
    for key in USERS:
        status, body = await server.call(
            "POST", "/api/v1/ssh-key", key, {"name": "k", "key_data": SSH_KEY}
        )
        assert status == 200, body
        for _ in range(VMS_PER_USER):
            order = {"template_id": 2, "image_id": 1, "ssh_key_id": body["data"]["id"]}
            status, vm = await server.call("POST", "/api/v1/vm", key, order)
            assert status == 200, vm
            ledger.owner[vm["data"]["id"]] = key


async def _invoice_all(server: RunningServer, ledger: Ledger, *, renewal: bool) -> list[str]:
    """One Lightning invoice per VM (renewals for 1, 2 or 3 months), returns their ids."""
    ids = []
    for n, (vm_id, key) in enumerate(sorted(ledger.owner.items())):
        intervals = 1 + n % 3 if renewal else 1
        path = f"/api/v1/vm/{vm_id}/renew?method=lightning&intervals={intervals}"
        status, body = await server.call("GET", path, key)
        assert status == 200, body
        payment_id = body["data"]["id"]
        assert payment_id not in ledger.invoices  # one outstanding invoice per VM
        ledger.invoices[payment_id] = (vm_id, intervals)
        ids.append(payment_id)
    return ids


async def _settle_burst(workdir: Path, ledger: Ledger, ids: list[str]) -> None:
    """Settle every invoice at once on the dev rail's file, as `lnvps dev pay` does."""
    node = DevLightningNode(workdir / "lnvps-dev-lightning.json")
    for payment_id in ids:
        await node.settle(bytes.fromhex(payment_id))
        ledger.settled.add(payment_id)


async def _paid_ids(db: str, ledger: Ledger) -> set[str]:
    table = t.subscription_payment
    rows = await fetch(db, select(table.c.id).where(table.c.is_paid == True))  # noqa: E712
    return {r["id"].hex() for r in rows} & set(ledger.invoices)


def _meta(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        loaded: dict[str, Any] = json.loads(value)
        return loaded
    return dict(value or {})


async def _all_settled_paid(db: str, ledger: Ledger) -> bool:
    return await _paid_ids(db, ledger) >= ledger.settled


async def _all_running(server: RunningServer, ledger: Ledger) -> bool:
    for vm_id, key in ledger.owner.items():
        status, body = await server.call("GET", f"/api/v1/vm/{vm_id}", key)
        if status != 200 or body["data"]["status"]["state"] != "running":
            return False
    return True


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def _check_consistent(db: str, ledger: Ledger) -> None:
    """The database after the dust settled: exactly-once everywhere, nothing stray."""
    sp, sub, item, vm, hist = (
        t.subscription_payment,
        t.subscription,
        t.subscription_line_item,
        t.vm,
        t.vm_history,
    )
    payments = await fetch(db, select(sp))
    by_id = {p["id"].hex(): p for p in payments}
    assert len(by_id) == len(payments)  # no payment row twice
    assert set(by_id) == set(ledger.invoices), "payments appeared or vanished"
    for payment_id, payment in by_id.items():
        assert bool(payment["is_paid"]) == (payment_id in ledger.settled), payment_id
        assert (payment["paid_at"] is not None) == bool(payment["is_paid"]), payment_id

    vms = {r["id"]: r for r in await fetch(db, select(vm))}
    items = {r["id"]: r for r in await fetch(db, select(item))}
    subs = {r["id"]: r for r in await fetch(db, select(sub))}
    assert set(vms) == set(ledger.owner), "VMs appeared or vanished"
    assert len(items) == len(subs) == len(vms), "a subscription or line item without its VM"
    assert sorted(r["subscription_line_item_id"] for r in vms.values()) == sorted(items)
    assert sorted(r["subscription_id"] for r in items.values()) == sorted(subs)
    sub_of_vm = {
        vm_id: items[r["subscription_line_item_id"]]["subscription_id"] for vm_id, r in vms.items()
    }
    assert not any(r["deleted"] for r in vms.values())
    ips = await fetch(db, select(t.vm_ip_assignment).where(t.vm_ip_assignment.c.deleted == False))  # noqa: E712
    per_vm = Counter(r["vm_id"] for r in ips)
    assert per_vm == Counter({vm_id: 2 for vm_id in ledger.owner}), "not one IPv4 + one IPv6 each"
    assert len({r["ip"] for r in ips}) == len(ips), "an address given twice"

    history = await fetch(db, select(hist))
    counted = Counter(
        (h["vm_id"], int(h["action_type"]), _meta(h["metadata"]).get("payment_id"))
        for h in history
        if h["action_type"] in (VmHistoryActionType.PAYMENT_RECEIVED, VmHistoryActionType.RENEWED)
    )
    expected_history: Counter[tuple[int, int, str]] = Counter()
    for payment_id in ledger.settled:
        vm_id = ledger.invoices[payment_id][0]
        for action in (VmHistoryActionType.PAYMENT_RECEIVED, VmHistoryActionType.RENEWED):
            expected_history[(vm_id, int(action), payment_id)] = 1
    assert counted == expected_history, "payment history is missing or doubled"
    issued = await fetch(db, select(t.invoice))  # issue 13: numbered in the booking transaction
    assert sorted(r["payment_id"].hex() for r in issued) == sorted(ledger.settled), (
        "an invoice is missing or doubled"
    )
    assert sorted(r["seq"] for r in issued) == list(range(1, len(issued) + 1)), "numbering gap"

    for vm_id in ledger.owner:
        paid = sorted(
            (
                by_id[pid]
                for pid, (v, _) in ledger.invoices.items()
                if v == vm_id and pid in ledger.settled
            ),
            key=lambda p: p["paid_at"],
        )
        subscription = subs[sub_of_vm[vm_id]]
        assert all(p["subscription_id"] == subscription["id"] for p in paid)
        if not paid:
            assert subscription["expires"] is None and not subscription["is_setup"]
            continue
        expected: datetime | None = None
        for payment in paid:  # D6: N calendar months from the expiry at completion
            at = _utc(payment["paid_at"])
            base = at if expected is None else max(expected, at)
            expected = MONTH.add_to(base, ledger.invoices[payment["id"].hex()][1])
        assert _utc(subscription["expires"]) == expected, (vm_id, len(paid))
        assert subscription["is_setup"] and subscription["is_active"]


async def _restart_until_all_paid(workdir: Path, db: str, ledger: Ledger) -> None:
    async with running_server(workdir, db, FAST_WORKER) as server:
        await poll("every settled payment to be paid", lambda: _all_settled_paid(db, ledger))
        await poll("every VM to run", lambda: _all_running(server, ledger))
    await _check_consistent(db, ledger)


async def _kill_test(tmp_path: Path, db: str) -> None:
    ledger = Ledger()

    # kill point 1: the first completion hangs writing the payment's history
    async with running_server(tmp_path, db, FAST_WORKER) as server:
        await _order_vms(server, ledger)
        purchases = await _invoice_all(server, ledger, renewal=False)
        async with stalled_inserts(db, "vm_history") as watch:
            try:
                await _settle_burst(tmp_path, ledger, purchases)
                await poll("the first completion to hang writing history", watch.stalled)
            finally:  # before the stall ends, also when the test failed
                await sigkill(server.process)
    # one completion at a time: at most the hanging one may have been booked before it hung
    assert len(await _paid_ids(db, ledger)) <= 1

    # kill point 2: a paid VM built and started on its host, its addresses not saved yet
    async with (
        stalled_inserts(db, "vm_ip_assignment") as watch,
        running_server(tmp_path, db, FAST_WORKER) as server,
    ):
        await poll("a spawn to hang saving the VM's addresses", watch.stalled)
        await sigkill(server.process)
    await _restart_until_all_paid(tmp_path, db, ledger)

    # kill point 3: half of a burst of renewals seen paid
    async with running_server(tmp_path, db, FAST_WORKER) as server:
        renewals = await _invoice_all(server, ledger, renewal=True)
        await _settle_burst(tmp_path, ledger, renewals)

        async def half_paid() -> bool:
            return len(await _paid_ids(db, ledger) & set(renewals)) >= len(renewals) // 2

        await poll("half of the renewals to be paid", half_paid)
        await sigkill(server.process)
    paid_before = await _paid_ids(db, ledger)

    # kill point 4: the restarted server replays; killed after one more payment
    async with running_server(tmp_path, db, FAST_WORKER) as server:

        async def one_more() -> bool:
            return len(await _paid_ids(db, ledger)) > len(paid_before)

        if paid_before < ledger.settled:
            await poll("the replay to complete one more payment", one_more)
        await sigkill(server.process)
    await _restart_until_all_paid(tmp_path, db, ledger)


async def test_kill9_during_completion_then_restart_is_consistent(
    tmp_path: Path, db_url: str
) -> None:
    await _kill_test(tmp_path, db_url)
