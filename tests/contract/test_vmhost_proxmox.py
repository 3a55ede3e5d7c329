"""Proxmox host on the wire: the requests it sends, retries, task polling, error classes."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from urllib.parse import unquote

import aiohttp
import attrs
import pytest

from adapters.memory.clock import FakeClock
from adapters.vmhost.dummy import DummyVmHost
from adapters.vmhost.proxmox import ProxmoxVmHost, config_for_host, image_filename, ip_config
from adapters.vmhost.proxmox_api import TaskStillRunning
from adapters.vmhost.resolver import VmHostClients
from domain.enums import IpRangeAllocationMode, VmHostKind
from domain.model import GIB, IpAssignment, IpRange
from ports.vmhost import (
    FullVmInfo,
    VmBuildInProgress,
    VmHostError,
    VmHostResolver,
    VmNotFoundOnHost,
    VmRunState,
)
from tests.contract.test_vmhost import T0, info, proxmox_config, vm
from tests.fakes.fake_proxmox import (
    IMPORTED_DISK,
    MIB,
    NODE,
    TOKEN,
    FakeGuest,
    FakeProxmox,
    FakeTask,
)


@attrs.define
class Node:
    fake: FakeProxmox
    host: ProxmoxVmHost
    url: str
    clock: FakeClock


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    clock = FakeClock(T0)
    fake = FakeProxmox(clock)
    async with fake.serve() as url:
        host = ProxmoxVmHost(proxmox_config(url), clock, rng=random.Random(5))
        yield Node(fake, host, url, clock)
        await host.aclose()


def networked(vm_id: int, vlan: int | None = 42) -> FullVmInfo:
    ips = (
        IpAssignment(id=1, vm_id=vm_id, ip_range_id=1, ip="185.18.221.14"),
        IpAssignment(id=2, vm_id=vm_id, ip_range_id=2, ip="2a13:2c0::1234"),
    )
    ranges = (
        IpRange(id=1, cidr="185.18.221.0/25", enabled=True, region_id=1, gateway="185.18.221.1/24"),
        IpRange(id=2, cidr="2a13:2c0::/64", enabled=True, region_id=1, gateway="2a13:2c0::1"),
    )
    base = info(vm_id)
    return attrs.evolve(base, ips=ips, ranges=ranges, host=attrs.evolve(base.host, vlan_id=vlan))


async def test_create_sends_the_reference_config_with_token_auth(node: Node) -> None:
    await node.host.create_vm(networked(1))
    [create] = node.fake.calls("POST", f"/nodes/{NODE}/qemu")
    assert create["vmid"] == "101"
    assert create["name"] == "VM1"
    assert (create["cores"], create["memory"]) == ("2", str(2 * GIB // MIB))
    assert create["net0"] == "virtio=ff:ff:ff:00:00:01,bridge=vmbr0,firewall=1,tag=42"
    assert create["ipconfig0"] == (
        "ip=185.18.221.14/24,gw=185.18.221.1,ip6=2a13:2c0::1234/64,gw6=2a13:2c0::1"
    )
    assert create["scsi0"] == (
        "local-lvm:0,import-from=local:import/debian-12-genericcloud-amd64.raw,discard=on,ssd=1"
    )
    assert (create["scsi1"], create["efidisk0"]) == (
        "local-lvm:cloudinit",
        "local-lvm:0,efitype=4m",
    )
    assert create["sshkeys"] == "ssh-ed25519%20AAAA%20k"
    assert unquote(create["sshkeys"]) == "ssh-ed25519 AAAA k"
    assert (create["boot"], create["bios"], create["onboot"]) == ("order=scsi0", "ovmf", "1")
    assert node.fake.guests[101].disk_size == 40 * GIB  # grown after the import
    assert node.fake.calls("POST", "/qemu/101/status/start")


async def test_create_can_leave_the_vm_stopped(node: Node) -> None:
    host = ProxmoxVmHost(proxmox_config(node.url, start_after_create=False), node.clock)
    await host.create_vm(info(1))
    assert (await host.get_vm_state(vm(1))).state is VmRunState.STOPPED
    await host.aclose()


async def test_create_is_not_retried_and_existing_vmid_is_fatal(node: Node) -> None:
    node.fake.guests[101] = FakeGuest(101, {"name": "other"})
    with pytest.raises(VmHostError) as caught:
        await node.host.create_vm(info(1))
    assert caught.value.transient is False
    assert "already exists" in caught.value.message
    assert len(node.fake.calls("POST", f"/nodes/{NODE}/qemu")) == 1


async def test_failed_resize_after_create_removes_the_new_vm(node: Node) -> None:
    with pytest.raises(VmHostError, match="shrinking"):
        await node.host.create_vm(info(1, disk=IMPORTED_DISK // 2))
    assert 101 not in node.fake.guests


async def test_transient_errors_are_retried(node: Node) -> None:
    await node.host.create_vm(info(1))
    node.fake.fail_next(503, 502)
    assert (await node.host.get_vm_state(vm(1))).state is VmRunState.RUNNING
    assert len(node.fake.calls("GET", "/qemu/101/status/current")) == 3


async def test_transient_errors_surface_as_transient_when_retries_run_out(node: Node) -> None:
    node.fake.fail_next(503, 503, 503)
    with pytest.raises(VmHostError) as caught:
        await node.host.get_all_vm_states()
    assert caught.value.transient is True
    assert len(node.fake.calls("GET", f"/nodes/{NODE}/qemu")) == 3


async def test_auth_failure_is_fatal_and_not_retried(node: Node) -> None:
    host = ProxmoxVmHost(proxmox_config(node.url, token="root@pam!x=wrong"), node.clock)
    with pytest.raises(VmHostError) as caught:
        await host.get_all_vm_states()
    assert (caught.value.transient, "401" in caught.value.message) == (False, True)
    assert len(node.fake.requests) == 1
    await host.aclose()


async def test_a_shared_session_still_sends_the_token(node: Node) -> None:
    async with aiohttp.ClientSession() as session:
        host = ProxmoxVmHost(proxmox_config(node.url), node.clock, session)
        assert dict(await host.get_all_vm_states()) == {}
        await host.aclose()
        assert not session.closed


async def test_unreachable_node_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    host = ProxmoxVmHost(proxmox_config(f"http://127.0.0.1:{port}"), FakeClock(T0))
    with pytest.raises(VmHostError) as caught:
        await host.get_all_vm_states()
    assert caught.value.transient is True
    await host.aclose()


async def test_power_calls_on_an_absent_vm_raise_not_found(node: Node) -> None:
    for call in (node.host.start_vm, node.host.stop_vm, node.host.restart_vm):
        with pytest.raises(VmNotFoundOnHost) as caught:
            await call(vm(7))
        assert caught.value.vm_id == 7
    await node.host.delete_vm(vm(7))  # deleting what is not there is fine


async def test_failed_task_is_fatal_with_its_exit_status(node: Node) -> None:
    await node.host.create_vm(info(1))
    await node.host.stop_vm(vm(1))
    with pytest.raises(VmHostError, match="Task finished with error: VM 101 not running"):
        await node.host.restart_vm(vm(1))


async def test_starting_a_running_vm_is_done_not_an_error(node: Node) -> None:
    """The spawn pipeline starts a VM that `create_vm` already booted (found by the e2e run
    on `lnvps serve`: every SpawnVm failed with "VM 101 already running")."""
    await node.host.create_vm(info(1))  # boots it (start_after_create)
    await node.host.start_vm(vm(1))
    await node.host.start_vm(vm(1))
    assert node.fake.guests[101].status == "running"
    assert len(node.fake.calls("POST", "/qemu/101/status/start")) == 3


async def test_a_stopped_vm_stays_off_when_its_node_reboots_and_a_started_one_comes_back(
    node: Node,
) -> None:
    """`onboot` follows the last power call (review r17): an expiry-stopped VM must not boot
    again with its node, a running one must."""
    await node.host.create_vm(info(1))
    await node.host.stop_vm(vm(1))
    node.fake.reboot()
    assert node.fake.guests[101].status == "stopped"
    await node.host.start_vm(vm(1))
    node.fake.reboot()
    assert node.fake.guests[101].status == "running"
    await node.host.restart_vm(vm(1))
    assert node.fake.guests[101].config["onboot"] == "1"
    assert node.fake.calls("PUT", "/qemu/101/config")[:2] == [{"onboot": "1"}, {"onboot": "0"}]


async def test_tasks_are_polled_until_they_stop(node: Node) -> None:
    node.fake.task_polls = 3
    await node.host.create_vm(info(1))
    await node.host.stop_vm(vm(1))
    upid_polls = [path for m, path, _ in node.fake.requests if "/tasks/" in path]
    assert len(upid_polls) == 4 * 4  # create, resize, start, stop: 3 running + 1 stopped each


async def test_task_that_never_ends_times_out_transiently(node: Node) -> None:
    """Proxmox goes on with a task after the wait ends: trying later may find it done."""
    await node.host.create_vm(info(1))
    node.fake.tasks_never_finish = True
    host = ProxmoxVmHost(proxmox_config(node.url, task_timeout_s=0), node.clock)
    with pytest.raises(TaskStillRunning, match="still running") as caught:
        await host.stop_vm(vm(1))
    assert caught.value.transient is True
    await host.aclose()


def _create_task(node: Node) -> FakeTask:
    [task] = [t for t in node.fake.tasks.values() if t.kind == "qmcreate"]
    return task


@pytest.mark.parametrize("same_client", [True, False])
async def test_a_create_that_outlives_its_wait_is_waited_for_not_built_again(
    node: Node, same_client: bool
) -> None:
    """The create task runs past the timeout: the error is transient, the guest is no
    leftover to delete while it is locked, and the next create (by this client, which
    remembers the task, or another, which finds it running) waits for the same task and
    gives the guest that spawn's settings, instead of creating again."""
    slow = ProxmoxVmHost(proxmox_config(node.url, task_timeout_s=0), node.clock)
    node.fake.tasks_never_finish = True
    with pytest.raises(VmHostError, match="still running") as caught:
        await slow.create_vm(info(1))
    assert caught.value.transient is True
    with pytest.raises(VmBuildInProgress) as busy:
        await node.host.delete_vm(vm(1))  # the next spawn's leftover check
    assert busy.value.transient is True and 101 in node.fake.guests
    node.fake.tasks_never_finish = False
    _create_task(node).polls_left = 0 if same_client else 2  # done, or about to be
    again = info(1)
    again = attrs.evolve(again, vm=attrs.evolve(again.vm, mac_address="bc:24:11:aa:bb:cc"))
    slow._api.config = node.host.config  # its next waits may last (not 0 s)

    await (slow if same_client else node.host).create_vm(again)

    assert len(node.fake.calls("POST", f"/nodes/{NODE}/qemu")) == 1
    guest = node.fake.guests[101]
    assert guest.config["net0"].startswith("virtio=bc:24:11:aa:bb:cc,")
    assert guest.disk_size == 40 * GIB and guest.status == "running"
    await slow.aclose()


async def test_a_vm_locked_by_its_create_is_busy_not_refused(node: Node) -> None:
    node.fake.tasks_never_finish = True
    slow = ProxmoxVmHost(proxmox_config(node.url, task_timeout_s=0), node.clock)
    with pytest.raises(TaskStillRunning):
        await slow.create_vm(info(1))
    with pytest.raises(VmHostError, match=r"locked \(create\)") as caught:
        await node.host.resize_vm(info(1, disk=80 * GIB))
    assert caught.value.transient is True
    await slow.aclose()


async def test_delete_stops_a_running_vm_first(node: Node) -> None:
    await node.host.create_vm(info(1))
    await node.host.delete_vm(vm(1))
    assert node.fake.calls("POST", "/qemu/101/status/stop")
    assert node.fake.calls("DELETE", "/qemu/101") == [
        {"purge": "1", "destroy-unreferenced-disks": "1"}
    ]
    assert node.fake.guests == {}


async def test_resize_grows_disk_and_sets_cores_and_memory(node: Node) -> None:
    await node.host.create_vm(info(1))
    await node.host.resize_vm(info(1, cpu=4, memory=8 * GIB, disk=80 * GIB))
    guest = node.fake.guests[101]
    assert (guest.disk_size, guest.config["cores"], guest.config["memory"]) == (
        80 * GIB,
        "4",
        "8192",
    )


@pytest.mark.parametrize("grown_by_hand", [80 * GIB, 100 * GIB])
async def test_resize_leaves_a_disk_as_large_as_the_target_alone(
    node: Node, grown_by_hand: int
) -> None:
    """Proxmox refuses to shrink (a fatal error, forever): a disk grown on the node to the
    target or past it keeps its size, and the CPU and memory are still set."""
    await node.host.create_vm(info(1))
    node.fake.guests[101].disk_size = grown_by_hand
    resizes = len(node.fake.calls("PUT", "/qemu/101/resize"))

    await node.host.resize_vm(info(1, cpu=4, memory=8 * GIB, disk=80 * GIB))

    guest = node.fake.guests[101]
    assert (guest.disk_size, guest.config["cores"]) == (grown_by_hand, "4")
    assert len(node.fake.calls("PUT", "/qemu/101/resize")) == resizes


async def test_reinstall_replaces_the_primary_disk(node: Node) -> None:
    await node.host.create_vm(info(1))
    await node.host.reinstall_vm(info(1))
    assert node.fake.calls("PUT", "/qemu/101/unlink") == [{"idlist": "scsi0", "force": "1"}]
    [config] = node.fake.calls("POST", "/qemu/101/config")
    assert "import-from=local:import/" in config["scsi0"]
    assert node.fake.guests[101].disk_size == 40 * GIB


async def test_reinstall_sets_the_vms_current_ssh_key(node: Node) -> None:
    """The owner changed the VM's key since it was built (PATCH /vm/{id}): the re-install is
    what puts the new key on the fresh disk."""
    built = info(1)
    await node.host.create_vm(built)
    changed = attrs.evolve(built.ssh_key, id=2, key_data="ssh-ed25519 BBBB new")
    await node.host.reinstall_vm(attrs.evolve(built, ssh_key=changed))
    [config] = node.fake.calls("POST", "/qemu/101/config")
    assert unquote(config["sshkeys"]) == "ssh-ed25519 BBBB new"


async def test_all_states_skip_guests_that_are_not_ours(node: Node) -> None:
    node.fake.guests[100] = FakeGuest(100, {"name": "infra"})
    await node.host.create_vm(info(3))
    node.clock.advance(timedelta(seconds=5))
    states = await node.host.get_all_vm_states()
    assert list(states) == [3]
    assert states[3].uptime == 5
    assert states[3].mem_usage == Decimal("0.25")
    assert str(states[3].cpu_usage) == "0.0231"


async def test_mac_uses_the_configured_prefix(node: Node) -> None:
    assert (await node.host.generate_mac(vm(1))).startswith("bc:24:11:")
    bad = ProxmoxVmHost(proxmox_config(node.url, mac_prefix="bc2411"), node.clock)
    with pytest.raises(VmHostError, match="Invalid mac prefix"):
        await bad.generate_mac(vm(1))


def test_ip_config_slaac_and_plain_gateway() -> None:
    base = networked(1)
    slaac = attrs.evolve(
        base,
        ranges=(
            IpRange(
                id=1, cidr="185.18.221.0/24", enabled=True, region_id=1, gateway="185.18.221.1"
            ),
            IpRange(
                id=2,
                cidr="2a13:2c0::/64",
                enabled=True,
                region_id=1,
                gateway="fe80::1",
                allocation_mode=IpRangeAllocationMode.SLAAC_EUI64,
            ),
        ),
    )
    assert ip_config(slaac) == "ip=185.18.221.14/24,gw=185.18.221.1,ip6=auto"


def test_config_for_host_and_image_file_name() -> None:
    host = attrs.evolve(info(1).host, kind=VmHostKind.PROXMOX, ip="https://pve1:8006")
    cfg = config_for_host(host, bridge="vmbr1")
    assert (cfg.base_url, cfg.node, cfg.token, cfg.bridge) == (
        "https://pve1:8006",
        "pve1",
        "root@pam!lnvps=secret",
        "vmbr1",
    )
    assert image_filename("https://x.example/a/b/img.qcow2?x=1") == "img.qcow2"
    with pytest.raises(VmHostError):
        image_filename("https://x.example/")
    assert TOKEN.startswith("root@pam!")


async def test_resolver_picks_the_client_by_host_kind(node: Node) -> None:
    dummy = DummyVmHost(None, node.clock)
    clients: VmHostResolver = VmHostClients(node.clock, dummy, {"poll_interval_ms": 0})
    row = attrs.evolve(
        info(1).host, kind=VmHostKind.PROXMOX, ip=node.url, name=NODE, api_token=TOKEN
    )
    assert clients.for_host(attrs.evolve(row, kind=VmHostKind.DUMMY)) is dummy
    proxmox = clients.for_host(row)
    assert clients.for_host(row) is proxmox
    await proxmox.create_vm(info(1))
    assert 101 in node.fake.guests
    assert isinstance(clients, VmHostClients)
    await clients.aclose()


async def test_resolver_without_proxmox_settings_uses_the_defaults() -> None:
    clients = VmHostClients(FakeClock(T0), DummyVmHost(None, FakeClock(T0)))
    client = clients.for_host(attrs.evolve(info(1).host, kind=VmHostKind.PROXMOX))
    assert isinstance(client, ProxmoxVmHost) and client.config.bridge == "vmbr0"
    await clients.aclose()
