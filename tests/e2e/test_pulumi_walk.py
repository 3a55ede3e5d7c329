"""The Pulumi provider's walk against the real `lnvps serve` process (api.md §10.1), twice:
on SQLite and on MariaDB. Payments go over the dev Lightning rail, paid by `lnvps dev pay`."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from domain.enums import IntervalType
from domain.intervals import Interval
from tests.dbtest import sqlite_url_for
from tests.e2e.serve_process import RunningServer, running_server
from tests.nostr_signing import NostrKey

KEY = NostrKey.from_seed(4242)
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4 e2e"


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


#: how long a condition may take on a loaded machine before the wait fails (never a sleep)
POLL_S = 180.0


async def _poll(what: str, probe: Any, seconds: float = POLL_S) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _pay(server: RunningServer, payment: dict[str, Any]) -> None:
    """Pay the invoice out of band, then poll the payment like the Pulumi client does."""
    assert payment["data"]["lightning"].startswith("lnbcrt")
    done = server.cli("dev", "pay", payment["id"])
    assert done.returncode == 0, done.stderr

    async def paid() -> bool:
        status, body = await server.call("GET", f"/api/v1/payment/{payment['id']}", KEY)
        assert status == 200, body
        return bool(body["data"]["is_paid"])

    await _poll("payment to be paid", paid)


async def _admin_walk(server: RunningServer) -> None:
    """README's admin walk: make the dev key super_admin, then call the admin API with a
    header from `lnvps dev auth` (signed over the full URL, query string included)."""
    pubkey = server.cli("dev", "pubkey")
    assert pubkey.returncode == 0, pubkey.stderr
    url = server.admin_url + "/api/admin/v1/users?limit=10"

    async def users() -> tuple[int, Any]:
        header = server.cli("dev", "auth", "GET", url)
        assert header.returncode == 0, header.stderr
        async with server.session.get(
            url, headers={"Authorization": header.stdout.strip()}
        ) as resp:
            return resp.status, await resp.json()

    status, body = await users()
    assert status == 403, body
    granted = server.cli("admin", "grant", pubkey.stdout.strip(), "super_admin")
    assert granted.returncode == 0, granted.stderr
    status, body = await users()
    assert status == 200, body
    assert pubkey.stdout.strip() in {u["pubkey"] for u in body["data"]}


async def _walk(server: RunningServer) -> None:
    status, methods = await server.call("GET", "/api/v1/payment/methods", None)
    assert status == 200, methods
    assert [m["name"] for m in methods["data"]] == ["lightning", "nwc", "lnurl"]
    status, body = await server.call(
        "POST", "/api/v1/ssh-key", KEY, {"name": "e2e", "key_data": SSH_KEY}
    )
    assert status == 200, body
    ssh_key_id = body["data"]["id"]
    status, templates = await server.call("GET", "/api/v1/vm/templates", None)
    tiny = next(t for t in templates["data"]["templates"] if t["name"] == "Tiny")
    assert tiny["cost_plan"]["interval_type"] == "month"
    status, images = await server.call("GET", "/api/v1/image", None)
    image_id = images["data"][0]["id"]

    status, body = await server.call(
        "POST",
        "/api/v1/vm",
        KEY,
        {"template_id": tiny["id"], "image_id": image_id, "ssh_key_id": ssh_key_id},
    )
    assert status == 200, body
    vm_id = body["data"]["id"]
    assert body["data"]["expires"] is None

    status, renew = await server.call("GET", f"/api/v1/vm/{vm_id}/renew?method=lightning", KEY)
    assert status == 200, renew
    assert renew["data"]["amount"] == 2_500_000  # EUR 2.50 at 100 000 EUR/BTC, in msat
    await _pay(server, renew["data"])

    async def running() -> dict[str, Any] | None:
        status, vm = await server.call("GET", f"/api/v1/vm/{vm_id}", KEY)
        assert status == 200, vm
        state = vm["data"]["status"]["state"]
        assert state in {"creating", "running", "stopped"}, state
        if state == "stopped":  # what the Pulumi provider does with a stopped VM
            await server.call("PATCH", f"/api/v1/vm/{vm_id}/start", KEY)
        return vm["data"] if state == "running" else None

    vm = await _poll("VM to run", running)
    assert vm["ip_assignments"] and vm["ip_assignments"][0]["ip"]
    assert vm["ssh_key"]["id"] == ssh_key_id
    first_expiry = _time(vm["expires"])

    status, renew3 = await server.call(
        "GET", f"/api/v1/vm/{vm_id}/renew?method=lightning&intervals=3", KEY
    )
    assert status == 200, renew3
    assert renew3["data"]["amount"] == 3 * 2_500_000
    await _pay(server, renew3["data"])
    status, vm = await server.call("GET", f"/api/v1/vm/{vm_id}", KEY)
    expected = Interval(IntervalType.MONTH).add_to(first_expiry, 3)
    assert _time(vm["data"]["expires"]) == expected  # to the second: 3 calendar months

    # paying again settles nothing new; a later payment is handled after anything the
    # replay could have caused (settlements go in settle-index order), so once it shows
    # as paid the replay has been seen: the expiry moved by that one month only
    again = server.cli("dev", "pay", renew3["data"]["id"])
    assert again.returncode == 0
    status, renew1 = await server.call("GET", f"/api/v1/vm/{vm_id}/renew?method=lightning", KEY)
    assert status == 200, renew1
    await _pay(server, renew1["data"])
    status, vm = await server.call("GET", f"/api/v1/vm/{vm_id}", KEY)
    assert _time(vm["data"]["expires"]) == Interval(IntervalType.MONTH).add_to(expected, 1)

    # README: a wallet string (both contact flags are required), then auto-renewal on
    wallet = (
        f"nostr+walletconnect://{NostrKey.from_seed(9).pubkey_hex}"
        f"?relay=wss://relay.example.com&secret={'22' * 32}"
    )
    status, body = await server.call(
        "PATCH",
        "/api/v1/account",
        KEY,
        {"contact_nip17": True, "contact_email": False, "nwc_connection_string": wallet},
    )
    assert status == 200, body
    status, body = await server.call(
        "PATCH", f"/api/v1/vm/{vm_id}", KEY, {"auto_renewal_enabled": True}
    )
    assert status == 200, body
    status, vm = await server.call("GET", f"/api/v1/vm/{vm_id}", KEY)
    assert vm["data"]["auto_renewal_enabled"] is True

    # another user cannot see it
    status, _ = await server.call("GET", f"/api/v1/vm/{vm_id}", NostrKey.from_seed(7))
    assert status == 404

    await _admin_walk(server)


async def test_pulumi_walk_on_sqlite(tmp_path: Path) -> None:
    """Each `lnvps` command here (`dev pay`, `dev pubkey`, `dev auth`, `admin grant`) runs as
    a real process the first time, as the operator runs it; repeats, and the other e2e tests,
    run them in-process: same code, files and database, no interpreter start-up."""
    db = sqlite_url_for(tmp_path / "lnvps.db")
    async with running_server(tmp_path, db, real_cli=True) as server:
        await _walk(server)


@pytest.mark.mysql
async def test_pulumi_walk_on_mariadb(tmp_path: Path, mysql_url: str) -> None:
    async with running_server(tmp_path, mysql_url) as server:
        await _walk(server)
