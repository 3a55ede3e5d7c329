"""`lnvps serve` on the embedded default stops and deletes VMs on schedule when its dev clock is
advanced with `lnvps dev advance-clock` (the worker checks every 0.25 s here, not every 30 s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.dbtest import sqlite_url_for
from tests.e2e.serve_process import RunningServer, running_server
from tests.e2e.test_pulumi_walk import KEY, POLL_S, SSH_KEY, _pay, _poll

FAST_WORKER = "worker:\n  check-interval: 0.25\n"


async def _vm_state(server: RunningServer, vm_id: int) -> str:
    status, body = await server.call("GET", f"/api/v1/vm/{vm_id}", KEY)
    if status == 404:
        return "deleted"
    assert status == 200, body
    state: str = body["data"]["status"]["state"]
    return state


async def _order(server: RunningServer, template: str) -> int:
    status, body = await server.call(
        "POST", "/api/v1/ssh-key", KEY, {"name": "k", "key_data": SSH_KEY}
    )
    key_id = body["data"]["id"]
    _, templates = await server.call("GET", "/api/v1/vm/templates", None)
    template_id = next(t["id"] for t in templates["data"]["templates"] if t["name"] == template)
    status, body = await server.call(
        "POST", "/api/v1/vm", KEY, {"template_id": template_id, "image_id": 1, "ssh_key_id": key_id}
    )
    assert status == 200, body
    vm_id: int = body["data"]["id"]
    return vm_id


def _advance(server: RunningServer, duration: str) -> None:
    done = server.cli("dev", "advance-clock", duration)
    assert done.returncode == 0, done.stderr


async def _state_becomes(server: RunningServer, vm_id: int, wanted: str) -> None:
    async def reached() -> bool:
        return await _vm_state(server, vm_id) == wanted

    await _poll(f"VM {vm_id} to be {wanted}", reached, seconds=POLL_S)


async def test_a_lapsed_daily_vm_is_stopped_then_deleted_after_its_grace(tmp_path: Path) -> None:
    async with running_server(tmp_path, sqlite_url_for(tmp_path / "l.db"), FAST_WORKER) as server:
        vm_id = await _order(server, "Demo Daily")
        _, renew = await server.call("GET", f"/api/v1/vm/{vm_id}/renew?method=lightning", KEY)
        await _pay(server, renew["data"])
        await _state_becomes(server, vm_id, "running")

        _advance(server, "23h")  # still paid: never stopped
        await _poll_quiet(server)
        assert await _vm_state(server, vm_id) == "running"

        _advance(server, "2h")  # expired an hour ago
        await _state_becomes(server, vm_id, "stopped")
        _advance(server, "1d")  # a 1-day-old subscription gets 1 day of grace (D16)
        await _state_becomes(server, vm_id, "deleted")
        # the notices are jobs queued after the deletion's commit: wait for the last one, then
        # for two more worker passes, and count each once
        await _logged(server, f"[VM{vm_id}] Deleted")
        await _poll_quiet(server)
        log = (tmp_path / "serve.log").read_text()
        assert log.count(f"[VM{vm_id}] Expired") == 1
        assert log.count(f"[VM{vm_id}] Deleted") == 1


async def test_a_never_paid_vm_is_deleted_an_hour_after_the_order(tmp_path: Path) -> None:
    async with running_server(tmp_path, sqlite_url_for(tmp_path / "n.db"), FAST_WORKER) as server:
        vm_id = await _order(server, "Tiny")
        _advance(server, "59m")
        await _poll_quiet(server)
        assert await _vm_state(server, vm_id) != "deleted"
        _advance(server, "2m")
        await _state_becomes(server, vm_id, "deleted")


async def _logged(server: RunningServer, line: str) -> None:
    """Wait until the server's log holds `line` (a notice is sent after the state it tells of
    is committed, so a client can see the state first)."""
    log = server.workdir / "serve.log"

    async def seen() -> bool:
        return line in log.read_text()

    await _poll(f"{line!r} in the log", seen, seconds=POLL_S)


async def _poll_quiet(server: RunningServer, passes: int = 2) -> Any:
    """Wait until the worker has finished `passes` more lifecycle runs and VM checks, so the
    last of each started after the clock moved and had its chance to (not) act.

    Counted from the worker's own log lines, not by sleeping: a loaded machine only makes
    this slower, never wrong."""
    log = server.workdir / "serve.log"
    start = len(log.read_bytes())

    async def done() -> bool:
        new = log.read_bytes()[start:]
        return new.count(b"lifecycle run at ") >= passes and new.count(b"VM check at ") >= passes

    await _poll("the worker to run twice", done, seconds=POLL_S)
