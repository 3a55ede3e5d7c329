"""VmHost contract: every host adapter (dummy isolated, dummy with a file, Proxmox) agrees."""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from adapters.memory.clock import FakeClock
from adapters.vmhost.dummy import DummyVmHost
from adapters.vmhost.proxmox import ProxmoxVmHost
from adapters.vmhost.proxmox_api import ProxmoxConfig
from domain.enums import DiskInterface, DiskType, OsDistribution, VmHostKind
from domain.model import GIB, Host, HostDisk, OsImage, SshKey, Vm, VmTemplate
from ports.vmhost import FullVmInfo, VmHost, VmHostError, VmNotFoundOnHost, VmRunState
from tests.fakes.fake_proxmox import NODE, TOKEN, FakeProxmox
from tests.fakes.image_server import ImageServer

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0_S = int(T0.timestamp())
REPO = Path(__file__).resolve().parents[2]
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def vm(vm_id: int) -> Vm:
    return Vm(
        id=vm_id,
        host_id=1,
        user_id=1,
        image_id=1,
        template_id=1,
        custom_template_id=None,
        ssh_key_id=1,
        disk_id=1,
        subscription_line_item_id=vm_id,
        mac_address="ff:ff:ff:00:00:01",
    )


def info(vm_id: int, *, cpu: int = 2, memory: int = 2 * GIB, disk: int = 40 * GIB) -> FullVmInfo:
    return FullVmInfo(
        vm=vm(vm_id),
        host=Host(
            id=1,
            kind=VmHostKind.DUMMY,
            region_id=1,
            name="pve1",
            ip="https://pve1.example:8006",
            cpu=16,
            memory=64 * GIB,
            enabled=True,
            api_token="root@pam!lnvps=secret",
        ),
        disk=HostDisk(
            id=1,
            host_id=1,
            name="local-lvm",
            size=1024 * GIB,
            kind=DiskType.SSD,
            interface=DiskInterface.PCIE,
            enabled=True,
        ),
        image=OsImage(
            id=1,
            distribution=OsDistribution.DEBIAN,
            flavour="server",
            version="12",
            enabled=True,
            release_date=T0,
            url="https://cloud.debian.org/debian-12-genericcloud-amd64.raw",
        ),
        ssh_key=SshKey(id=1, name="k", user_id=1, created=T0, key_data="ssh-ed25519 AAAA k"),
        template=VmTemplate(
            id=1,
            name="tiny",
            enabled=True,
            created=T0,
            expires=None,
            cpu=cpu,
            memory=memory,
            disk_size=disk,
            disk_type=DiskType.SSD,
            disk_interface=DiskInterface.PCIE,
            cost_plan_id=1,
            region_id=1,
        ),
    )


def proxmox_config(base_url: str, **overrides: Any) -> ProxmoxConfig:
    """Settings for the fake node: no waiting between polls or retries."""
    fast = ProxmoxConfig(
        base_url=base_url,
        node=NODE,
        token=TOKEN,
        poll_interval_ms=0,
        retry_min_ms=0,
        retry_max_ms=0,
    )
    return attrs.evolve(fast, **overrides)


@attrs.define
class Subject:
    """One adapter under test, its clock, and (for persistent ones) a simulated restart."""

    kind: str
    host: VmHost
    clock: FakeClock
    restart: Callable[[], VmHost] | None = None
    #: Proxmox boots a new VM (as the reference does); the dummy leaves it stopped (§11.2)
    created_state: VmRunState = VmRunState.STOPPED


ADAPTERS = ["dummy", "dummy-file", "proxmox"]


@pytest.fixture(params=ADAPTERS)
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subject]:
    clock = FakeClock(T0)
    kind = str(request.param)
    if kind == "dummy":
        yield Subject(kind, DummyVmHost(None, clock, random.Random(1)), clock)
    elif kind == "dummy-file":
        path = tmp_path / "lnvps_dummy_vms.json"

        def restart() -> VmHost:
            return DummyVmHost(path, clock, random.Random(2))

        yield Subject(kind, restart(), clock, restart)
    else:
        async with FakeProxmox(clock).serve() as url:
            hosts: list[ProxmoxVmHost] = []

            def reconnect() -> VmHost:
                hosts.append(ProxmoxVmHost(proxmox_config(url), clock, rng=random.Random(4)))
                return hosts[-1]

            yield Subject(kind, reconnect(), clock, reconnect, VmRunState.RUNNING)
            for host in hosts:
                await host.aclose()


async def create_stopped(subject: Subject, *vm_ids: int) -> None:
    """Create VMs and bring them to `stopped` whatever the adapter does after creating."""
    for vm_id in vm_ids:
        await subject.host.create_vm(info(vm_id))
        await subject.host.stop_vm(vm(vm_id))


def dummy_file(tmp_path: Path, clock: FakeClock | None = None) -> DummyVmHost:
    return DummyVmHost(tmp_path / "lnvps_dummy_vms.json", clock or FakeClock(T0), random.Random(3))


# --- the contract every adapter passes ------------------------------------------------------


async def test_created_vm_exists_in_the_adapters_created_state(subject: Subject) -> None:
    await subject.host.create_vm(info(1))
    state = await subject.host.get_vm_state(vm(1))
    assert state.state is subject.created_state
    assert state.uptime == 0
    assert state.timestamp == T0_S


async def test_stopped_vm_reports_zero_usage(subject: Subject) -> None:
    await create_stopped(subject, 1)
    state = await subject.host.get_vm_state(vm(1))
    assert state.state is VmRunState.STOPPED
    assert (state.uptime, state.cpu_usage, state.mem_usage) == (0, Decimal(0), Decimal(0))


async def test_start_runs_and_stop_stops_with_uptime_zero(subject: Subject) -> None:
    await create_stopped(subject, 1)
    await subject.host.start_vm(vm(1))
    assert (await subject.host.get_vm_state(vm(1))).state is VmRunState.RUNNING
    subject.clock.advance(timedelta(seconds=45))
    assert (await subject.host.get_vm_state(vm(1))).uptime == 45
    await subject.host.stop_vm(vm(1))
    state = await subject.host.get_vm_state(vm(1))
    assert (state.state, state.uptime) == (VmRunState.STOPPED, 0)


async def test_restart_resets_uptime_and_runs(subject: Subject) -> None:
    await create_stopped(subject, 1)
    await subject.host.start_vm(vm(1))
    subject.clock.advance(timedelta(seconds=100))
    await subject.host.restart_vm(vm(1))
    state = await subject.host.get_vm_state(vm(1))
    assert (state.state, state.uptime) == (VmRunState.RUNNING, 0)
    subject.clock.advance(timedelta(seconds=7))
    assert (await subject.host.get_vm_state(vm(1))).uptime == 7


async def test_deleted_vm_is_not_found(subject: Subject) -> None:
    await subject.host.create_vm(info(1))
    await subject.host.delete_vm(vm(1))
    with pytest.raises(VmNotFoundOnHost) as caught:
        await subject.host.get_vm_state(vm(1))
    assert caught.value.message == "Vm not found"
    assert caught.value.transient is False
    assert isinstance(caught.value, VmHostError)


async def test_never_created_vm_is_not_found(subject: Subject) -> None:
    with pytest.raises(VmNotFoundOnHost):
        await subject.host.get_vm_state(vm(99))


async def test_all_states_lists_exactly_the_present_vms(subject: Subject) -> None:
    assert dict(await subject.host.get_all_vm_states()) == {}
    await create_stopped(subject, 1, 2, 3)
    await subject.host.start_vm(vm(3))
    await subject.host.delete_vm(vm(2))
    states = await subject.host.get_all_vm_states()
    assert sorted(states) == [1, 3]
    assert states[1].state is VmRunState.STOPPED
    assert states[3].state is VmRunState.RUNNING


async def test_uptime_follows_the_clock_only_while_running(subject: Subject) -> None:
    await create_stopped(subject, 1)
    subject.clock.advance(timedelta(minutes=10))
    assert (await subject.host.get_vm_state(vm(1))).uptime == 0
    await subject.host.start_vm(vm(1))
    subject.clock.advance(timedelta(seconds=90))
    assert (await subject.host.get_all_vm_states())[1].uptime == 90
    subject.clock.advance(timedelta(seconds=10))
    state = await subject.host.get_vm_state(vm(1))
    assert (state.uptime, state.timestamp) == (100, T0_S + 700)
    await subject.host.stop_vm(vm(1))
    subject.clock.advance(timedelta(hours=1))
    assert (await subject.host.get_vm_state(vm(1))).uptime == 0
    await subject.host.start_vm(vm(1))
    subject.clock.advance(timedelta(seconds=30))
    assert (await subject.host.get_vm_state(vm(1))).uptime == 30


async def test_usage_is_a_fraction_while_running(subject: Subject) -> None:
    await create_stopped(subject, 1)
    await subject.host.start_vm(vm(1))
    subject.clock.advance(timedelta(seconds=30))
    state = await subject.host.get_vm_state(vm(1))
    for usage in (state.cpu_usage, state.mem_usage):
        assert isinstance(usage, Decimal)
        assert Decimal(0) < usage <= Decimal(1)


async def test_resize_and_reinstall_keep_the_vm(subject: Subject) -> None:
    await subject.host.create_vm(info(1))
    await subject.host.resize_vm(info(1, cpu=4, memory=4 * GIB, disk=80 * GIB))
    await subject.host.reinstall_vm(info(1))
    assert 1 in await subject.host.get_all_vm_states()


async def test_generate_mac_is_a_mac(subject: Subject) -> None:
    macs = {await subject.host.generate_mac(vm(1)) for _ in range(20)}
    assert all(MAC.match(mac) for mac in macs)
    assert len(macs) > 1


async def test_new_instance_sees_the_same_vms_and_states(subject: Subject) -> None:
    """A restarted process (dummy: same file; Proxmox: same node) finds its VMs as they were."""
    if subject.restart is None:
        pytest.skip(f"{subject.kind} keeps nothing across restarts")
    await create_stopped(subject, 1, 2)
    await subject.host.start_vm(vm(2))
    subject.clock.advance(timedelta(seconds=20))
    again = subject.restart()
    states = await again.get_all_vm_states()
    assert {k: s.state for k, s in states.items()} == {
        1: VmRunState.STOPPED,
        2: VmRunState.RUNNING,
    }
    assert states[2].uptime == 20


async def test_time_series_of_an_absent_vm_is_not_found(subject: Subject) -> None:
    with pytest.raises(VmNotFoundOnHost):
        await subject.host.get_time_series(vm(42))


async def test_time_series_of_a_running_vm_are_fractions_and_rates(subject: Subject) -> None:
    await create_stopped(subject, 1)
    await subject.host.start_vm(vm(1))
    subject.clock.advance(timedelta(seconds=30))
    await subject.host.get_vm_state(vm(1))  # a VM check: libvirt samples its counters here
    subject.clock.advance(timedelta(seconds=120))
    points = list(await subject.host.get_time_series(vm(1)))
    assert points, "a running VM has metrics"
    now = T0_S + 150
    stamps = [p.timestamp for p in points]
    assert stamps == sorted(stamps) and stamps[-1] <= now and stamps[0] >= now - 75 * 60
    for p in points:
        assert isinstance(p.cpu, Decimal) and isinstance(p.net_in, Decimal)
        assert Decimal(0) <= p.cpu <= Decimal(1) and Decimal(0) <= p.memory <= Decimal(1)
        assert p.memory_size > 0
        assert min(p.net_in, p.net_out, p.disk_read, p.disk_write) >= 0


async def test_download_os_image_fetches_once(subject: Subject, image_server: ImageServer) -> None:
    image = image_server.image()
    assert await subject.host.download_os_image(image) is True
    assert await subject.host.download_os_image(image) is False
    assert image_server.hits.get("debian-12.qcow2", 0) <= 1


# --- dummy host specifics (lifecycle.md §11.2) ----------------------------------------------


DUMMIES = pytest.mark.parametrize("subject", ["dummy", "dummy-file"], indirect=True)


@DUMMIES
async def test_dummy_time_series_is_the_synthetic_hour(subject: Subject) -> None:
    await subject.host.create_vm(info(1))
    points = list(await subject.host.get_time_series(vm(1)))
    assert [p.timestamp for p in points] == [T0_S - (60 - i) * 60 for i in range(60)]
    assert (points[0].cpu, points[0].memory) == (Decimal("0.05"), Decimal("0.20"))
    assert (points[15].cpu, points[30].memory) == (Decimal("0.35"), Decimal("0.60"))
    assert points[15].net_in == 64_000 * Decimal("0.35")
    assert points[15].disk_read == 5_000_000 * Decimal("0.35")
    assert {p.memory_size for p in points} == {GIB}


@DUMMIES
async def test_dummy_power_calls_on_an_absent_vm_succeed_silently(subject: Subject) -> None:
    await subject.host.start_vm(vm(5))
    await subject.host.stop_vm(vm(5))
    await subject.host.restart_vm(vm(5))
    await subject.host.delete_vm(vm(5))
    assert dict(await subject.host.get_all_vm_states()) == {}


@DUMMIES
async def test_dummy_restart_of_a_stopped_vm_starts_it(subject: Subject) -> None:
    await subject.host.create_vm(info(1))
    await subject.host.restart_vm(vm(1))
    assert (await subject.host.get_vm_state(vm(1))).state is VmRunState.RUNNING


@DUMMIES
async def test_dummy_created_vm_is_stopped_not_started(subject: Subject) -> None:
    await subject.host.create_vm(info(1))
    assert (await subject.host.get_vm_state(vm(1))).state is VmRunState.STOPPED


@DUMMIES
async def test_dummy_usage_formulas(subject: Subject) -> None:
    await subject.host.create_vm(info(1))
    await subject.host.start_vm(vm(1))
    subject.clock.advance(timedelta(seconds=330))  # 330 mod 60 = 30, 330 mod 300 = 30
    state = await subject.host.get_vm_state(vm(1))
    assert state.cpu_usage == Decimal("0.20")  # 0.05 + 0.30 × 30/60
    assert state.mem_usage == Decimal("0.24")  # 0.20 + 0.40 × 30/300


@DUMMIES
async def test_dummy_counters_grow_only_while_running(subject: Subject) -> None:
    await subject.host.create_vm(info(1))
    subject.clock.advance(timedelta(seconds=60))
    idle = await subject.host.get_vm_state(vm(1))
    assert (idle.net_in, idle.net_out, idle.disk_read, idle.disk_write) == (0, 0, 0, 0)
    await subject.host.start_vm(vm(1))
    subject.clock.advance(timedelta(seconds=60))
    busy = await subject.host.get_vm_state(vm(1))
    assert 0 < busy.net_in < 60 * 250_000
    assert 0 < busy.net_out < 60 * 125_000
    assert 0 < busy.disk_read < 60 * 50_000_000
    assert 0 < busy.disk_write < 60 * 25_000_000


@DUMMIES
async def test_dummy_create_overwrites_with_a_fresh_stopped_record(subject: Subject) -> None:
    await subject.host.create_vm(info(1))
    await subject.host.start_vm(vm(1))
    subject.clock.advance(timedelta(seconds=60))
    await subject.host.create_vm(info(1))
    state = await subject.host.get_vm_state(vm(1))
    assert (state.state, state.uptime, state.net_in) == (VmRunState.STOPPED, 0, 0)


@DUMMIES
async def test_dummy_mac_has_the_ff_ff_ff_prefix(subject: Subject) -> None:
    assert (await subject.host.generate_mac(vm(1))).startswith("ff:ff:ff:")


async def test_isolated_dummies_share_nothing() -> None:
    clock = FakeClock(T0)
    first, second = DummyVmHost(None, clock), DummyVmHost(None, clock)
    await first.create_vm(info(1))
    with pytest.raises(VmNotFoundOnHost):
        await second.get_vm_state(vm(1))


async def test_dummy_file_has_the_reference_json_shape(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    host = dummy_file(tmp_path, clock)
    await host.create_vm(info(2))
    await host.create_vm(info(10))
    await host.start_vm(vm(10))
    text = (tmp_path / "lnvps_dummy_vms.json").read_text()
    assert json.loads(text) == {
        "2": {
            "state": "stopped",
            "uptime_secs": 0,
            "net_in": 0,
            "net_out": 0,
            "disk_read": 0,
            "disk_write": 0,
            "last_tick": 0,
        },
        "10": {
            "state": "running",
            "uptime_secs": 0,
            "net_in": 0,
            "net_out": 0,
            "disk_read": 0,
            "disk_write": 0,
            "last_tick": T0_S,
        },
    }
    assert text.startswith('{"2":{"state":"stopped","uptime_secs":0,')


async def test_dummy_file_reads_do_not_save(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    host = dummy_file(tmp_path, clock)
    await host.create_vm(info(1))
    await host.start_vm(vm(1))
    path = tmp_path / "lnvps_dummy_vms.json"
    before = path.read_text()
    clock.advance(timedelta(seconds=30))
    assert (await host.get_vm_state(vm(1))).uptime == 30
    await host.get_all_vm_states()
    assert path.read_text() == before


async def test_dummy_file_loads_a_file_written_by_the_reference(tmp_path: Path) -> None:
    path = tmp_path / "lnvps_dummy_vms.json"
    record = '"uptime_secs":50,"net_in":1,"net_out":2,"disk_read":3,"disk_write":4'
    path.write_text(f'{{"7":{{"state":"running",{record},"last_tick":{T0_S - 10}}}}}')
    state = await dummy_file(tmp_path).get_vm_state(vm(7))
    assert (state.state, state.uptime, state.timestamp) == (VmRunState.RUNNING, 60, T0_S)


async def test_dummy_file_unreadable_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "lnvps_dummy_vms.json").write_text("{not json")
    host = dummy_file(tmp_path)
    assert dict(await host.get_all_vm_states()) == {}
    assert "unreadable" in caplog.text
    await host.create_vm(info(1))
    assert list(json.loads((tmp_path / "lnvps_dummy_vms.json").read_text())) == ["1"]


async def test_dummy_file_sees_changes_made_by_another_instance(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    first, second = dummy_file(tmp_path, clock), dummy_file(tmp_path, clock)
    await first.create_vm(info(1))
    await second.start_vm(vm(1))
    assert (await first.get_vm_state(vm(1))).state is VmRunState.RUNNING
    await first.stop_vm(vm(1))
    await second.delete_vm(vm(1))
    with pytest.raises(VmNotFoundOnHost):
        await first.get_vm_state(vm(1))


async def test_dummy_file_concurrent_mutations_lose_nothing(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    hosts = [dummy_file(tmp_path, clock) for _ in range(3)]
    ids = range(1, 61)
    await asyncio.gather(*(hosts[i % 3].create_vm(info(i)) for i in ids))
    await asyncio.gather(*(hosts[i % 2].start_vm(vm(i)) for i in ids if i % 2 == 0))
    on_disk = json.loads((tmp_path / "lnvps_dummy_vms.json").read_text())
    assert sorted(int(k) for k in on_disk) == list(ids)
    running = {int(k) for k, rec in on_disk.items() if rec["state"] == "running"}
    assert running == {i for i in ids if i % 2 == 0}
    states = await dummy_file(tmp_path, clock).get_all_vm_states()
    assert len(states) == 60


_WORKER = """
import asyncio, random, sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from adapters.memory.clock import FakeClock
from adapters.vmhost.dummy import DummyVmHost
from adapters.vmhost.proxmox import ProxmoxVmHost
from adapters.vmhost.proxmox_api import ProxmoxConfig
from tests.contract.test_vmhost import info

async def main(path: str, first: int) -> None:
    host = DummyVmHost(Path(path), FakeClock(datetime(2026, 3, 1, tzinfo=UTC)))
    for vm_id in range(first, first + 25):
        await host.create_vm(info(vm_id))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def test_dummy_file_two_processes_lose_nothing(tmp_path: Path) -> None:
    """The API and the worker may run as two processes sharing the dev host's file."""
    path = tmp_path / "lnvps_dummy_vms.json"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(path), str(first)], cwd=REPO)
        for first in (1, 26)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert sorted(int(k) for k in json.loads(path.read_text())) == list(range(1, 51))
