"""Real host rows on `lnvps serve`: the admin adds a Proxmox host through the admin API,
pointing at the wire-level fake Proxmox; an order in its region is paid on the dev rail, the
VM is created and started on the fake, stopped there at expiry and deleted after its grace.
Then the same on a libvirt host (libvirt's test driver, run inside the server process).
On both, the OS image is first fetched onto the host through the admin API (from a local
mirror, checksum verified) and the running VM's time series comes from the host.

The fake runs in this test's event loop, so every `lnvps` command is run off the loop (the
server's calls to the fake are answered meanwhile). Tasks report `running` once before they
stop, so the worker's task polling is exercised."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from adapters.memory.clock import FakeClock
from tests.contract.test_vmhost import T0
from tests.dbtest import sqlite_url_for
from tests.e2e.serve_process import RunningServer, running_server
from tests.e2e.test_pulumi_walk import KEY, POLL_S, _poll
from tests.e2e.test_time_travel import FAST_WORKER, _order, _state_becomes
from tests.fakes.fake_proxmox import NODE, TOKEN, FakeProxmox
from tests.fakes.image_server import IMAGE_BYTES, ImageServer, serve_images

GIB = 1024**3
#: the file name of the demo's Debian image (image 1)
IMAGE_FILE = "debian-12-generic-amd64.qcow2"
CONFIG = FAST_WORKER + (
    "vm-hosts:\n  proxmox:\n    poll-interval-ms: 50\n    retry-min-ms: 50\n    retry-max-ms: 200\n"
)


async def _cli(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    done = await asyncio.to_thread(server.cli, *args)
    assert done.returncode == 0, done.stderr
    return done


async def _admin(server: RunningServer, method: str, path: str, body: Any = None) -> Any:
    """An admin API call signed with the dev key (`lnvps dev auth`), as the README shows."""
    url = server.admin_url + "/api/admin/v1" + path
    header = (await _cli(server, "dev", "auth", method, url)).stdout.strip()
    async with server.session.request(
        method, url, json=body, headers={"Authorization": header}
    ) as resp:
        answer = await resp.json()
        assert resp.status == 200, answer
        return answer["data"]


async def _pay_off_loop(server: RunningServer, payment: dict[str, Any]) -> None:
    await _cli(server, "dev", "pay", payment["id"])

    async def paid() -> bool:
        status, body = await server.call("GET", f"/api/v1/payment/{payment['id']}", KEY)
        assert status == 200, body
        return bool(body["data"]["is_paid"])

    await _poll("payment to be paid", paid)


async def _guest_is(fake: FakeProxmox, vmid: int, wanted: str) -> None:
    async def reached() -> bool:
        guest = fake.guests.get(vmid)
        return (guest.status if guest is not None else "deleted") == wanted

    await _poll(f"guest {vmid} to be {wanted} on the fake Proxmox", reached, seconds=POLL_S)


async def _add_host(server: RunningServer, host_body: dict[str, Any]) -> None:
    """Make the dev key super admin, add the host and its disk in the demo region, and
    disable the demo's dummy host so the next VM lands on the new one."""
    pubkey = (await _cli(server, "dev", "pubkey")).stdout.strip()
    await _cli(server, "admin", "grant", pubkey, "super_admin")
    (demo,) = await _admin(server, "GET", "/hosts")
    host = await _admin(
        server,
        "POST",
        "/hosts",
        {
            **host_body,
            "region_id": demo["region"]["id"],
            "cpu": 16,
            "memory": 64 * GIB,
        },
    )
    await _admin(
        server,
        "POST",
        f"/hosts/{host['id']}/disks",
        {"name": "local-lvm", "size": 1000 * GIB, "kind": "ssd", "interface": "pcie"},
    )
    await _admin(server, "PATCH", f"/hosts/{demo['id']}", {"enabled": False})


async def _check_log(server: RunningServer, vm_id: int) -> None:
    async def noticed() -> bool:  # the notice follows the host call
        return f"[VM{vm_id}] Deleted" in (server.workdir / "serve.log").read_text()

    await _poll("the deletion notice", noticed)
    log = (server.workdir / "serve.log").read_text()
    assert log.count(f"[VM{vm_id}] Expired") == 1 and log.count(f"[VM{vm_id}] Deleted") == 1
    assert len(re.findall(rf"notify user \d+: \[VM{vm_id}\] Created", log)) == 1
    assert "Traceback" not in log  # no failed, retried SpawnVm on the way


async def _mirror_image(server: RunningServer, mirror: ImageServer) -> None:
    """Point the demo's image at the local mirror (with its SHA-256) and queue its download."""
    image = mirror.image(IMAGE_FILE)
    await _admin(server, "PATCH", "/vm_os_images/1", {"url": image.url, "sha2": image.sha2})
    queued = await _admin(server, "POST", "/vm_os_images/1/download")
    assert queued == "Download job enqueued"


async def _series_from_host(server: RunningServer, vm_id: int, memory: int) -> None:
    """The time-series of the running VM is what its host reports (not `[]`)."""

    async def points() -> list[dict[str, Any]]:
        status, body = await server.call("GET", f"/api/v1/vm/{vm_id}/time-series", KEY)
        assert status == 200, body
        found: list[dict[str, Any]] = body["data"]
        return found

    series = await _poll(f"metrics of VM {vm_id}", points)
    for point in series:
        assert 0 <= point["cpu"] <= 1 and 0 <= point["memory"] <= 1
        assert point["memory_size"] == memory
        assert min(point["net_in"], point["net_out"], point["disk_read"], point["disk_write"]) >= 0
    stamps = [p["timestamp"] for p in series]
    assert stamps == sorted(stamps)


async def _walk(server: RunningServer, fake: FakeProxmox, url: str) -> None:
    await _add_host(server, {"name": NODE, "ip": url, "api_token": TOKEN, "kind": "proxmox"})
    assert fake.calls("GET", "/api2/json/version")  # the test connection reached the fake
    async with serve_images() as mirror:
        await _mirror_image(server, mirror)

        async def stored() -> bool:
            return fake.volumes.get(f"local:import/{IMAGE_FILE}") == IMAGE_BYTES

        await _poll("the image in the node's storage", stored)
    [download] = fake.calls("POST", "/storage/local/download-url")
    assert download["checksum-algorithm"] == "sha256" and download["content"] == "import"

    vm_id = await _order(server, "Demo Daily")
    vmid = vm_id + 100
    _, renew = await server.call("GET", f"/api/v1/vm/{vm_id}/renew?method=lightning", KEY)
    await _pay_off_loop(server, renew["data"])
    await _guest_is(fake, vmid, "running")
    assert fake.calls("POST", f"/qemu/{vmid}/status/start")
    assert any(p.get("vmid") == str(vmid) for p in fake.calls("POST", f"/nodes/{NODE}/qemu"))
    assert not fake.calls("POST", f"/qemu/{vmid}/status/stop")
    memory = int(fake.guests[vmid].config["memory"]) * 1024**2
    await _series_from_host(server, vm_id, memory)
    assert fake.calls("GET", f"/qemu/{vmid}/rrddata")

    await _cli(server, "dev", "advance-clock", "25h")  # expired an hour ago
    await _guest_is(fake, vmid, "stopped")
    await _cli(server, "dev", "advance-clock", "1d")  # past the 1-day grace (D16)
    await _guest_is(fake, vmid, "deleted")
    assert len(fake.calls("DELETE", f"/qemu/{vmid}")) == 1
    await _check_log(server, vm_id)


async def test_a_proxmox_host_added_through_the_admin_api_runs_a_vm_on_sqlite(
    tmp_path: Path,
) -> None:
    fake = FakeProxmox(FakeClock(T0))
    async with (
        fake.serve() as url,
        running_server(tmp_path, sqlite_url_for(tmp_path / "p.db"), CONFIG) as server,
    ):
        await _walk(server, fake, url)


@pytest.mark.mysql
async def test_a_proxmox_host_added_through_the_admin_api_runs_a_vm_on_mariadb(
    tmp_path: Path, mysql_url: str
) -> None:
    fake = FakeProxmox(FakeClock(T0))
    async with fake.serve() as url, running_server(tmp_path, mysql_url, CONFIG) as server:
        await _walk(server, fake, url)


#: a libvirt test-driver node with an empty pool: the demo's image is downloaded into it
LIBVIRT_NODE = """<node>
  <cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads>
    <active>4</active><mhz>2000</mhz><model>x86_64</model></cpu>
  <memory>8388608</memory>
  <network><name>default</name><bridge name='virbr0'/><forward/>
    <ip address='192.168.122.1' netmask='255.255.255.0'/></network>
  <pool type='dir'><name>default-pool</name><target><path>/default-pool</path></target>
  </pool>
</node>
"""


async def test_a_libvirt_host_added_through_the_admin_api_runs_a_vm(tmp_path: Path) -> None:
    """The same walk on libvirt's test driver inside the server process: the VM's state is
    what the worker reads back from the host (`status.state`), then 404 once deleted. The
    image is downloaded into the (empty) pool first: without it the VM could not be built.
    The time series are the rates between the samples the worker's VM checks took."""
    pytest.importorskip("libvirt")
    node = tmp_path / "node.xml"
    node.write_text(LIBVIRT_NODE)
    config = FAST_WORKER + (
        "vm-hosts:\n  libvirt-test-files: true\n  libvirt:\n    storage-pool: default-pool\n"
    )
    async with running_server(tmp_path, sqlite_url_for(tmp_path / "l.db"), config) as server:
        await _add_host(
            server, {"name": "kvm1", "ip": f"test://{node}", "api_token": "-", "kind": "libvirt"}
        )
        async with serve_images() as mirror:
            await _mirror_image(server, mirror)

            async def fetched() -> bool:
                log = (server.workdir / "serve.log").read_text()
                return "image 1: fetched on (2,)" in log

            await _poll("the image in the pool", fetched)
            assert mirror.hits == {IMAGE_FILE: 1}
        vm_id = await _order(server, "Demo Daily")
        _, renew = await server.call("GET", f"/api/v1/vm/{vm_id}/renew?method=lightning", KEY)
        await _pay_off_loop(server, renew["data"])
        await _state_becomes(server, vm_id, "running")
        await _series_from_host(server, vm_id, 1 * GIB)
        await _cli(server, "dev", "advance-clock", "25h")
        await _state_becomes(server, vm_id, "stopped")
        await _cli(server, "dev", "advance-clock", "1d")
        await _state_becomes(server, vm_id, "deleted")
        await _check_log(server, vm_id)
