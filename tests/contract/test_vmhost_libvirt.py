"""VmHost contract and libvirt specifics on libvirt's built-in `test:///default` driver."""

from __future__ import annotations

import inspect
import logging
import os
import random
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest

try:
    import libvirt
except ImportError as exc:  # pragma: no cover - depends on the machine
    if os.environ.get("LNVPS_REQUIRE_MYSQL") == "1":
        raise ImportError(
            "libvirt-python is required in CI: run .ci/install-system-deps, then pip install"
        ) from exc
    pytest.skip(f"libvirt-python not importable: {exc}", allow_module_level=True)

from adapters.memory.clock import FakeClock
from adapters.vmhost import libvirt_host
from adapters.vmhost.libvirt_host import LibvirtVmHost, classify
from adapters.vmhost.libvirt_xml import domain_name, image_volume_name
from domain.enums import DiskInterface, DiskType
from domain.model import GIB, CustomTemplate, Vm
from ports.vmhost import InvalidVmConfig, VmHost, VmHostError, VmNotFoundOnHost, VmRunState
from tests.contract import test_vmhost as contract
from tests.contract.test_vmhost import T0, Subject, info
from tests.contract.test_vmhost import vm as contract_vm

URI = "test:///default"
POOL = "default-pool"  # the test driver's only pool ("default" is its network)
IMAGE = image_volume_name(info(1).image.url)


def vm(vm_id: int) -> Vm:
    return unicast_vm(vm_id)


def _contract_tests() -> dict[str, Callable[..., Any]]:
    """The shared suite's tests that take `subject` and are not pinned to other adapters."""
    tests: dict[str, Callable[..., Any]] = {}
    for name, fn in vars(contract).items():
        if not (name.startswith("test_") and inspect.iscoroutinefunction(fn)):
            continue
        if "subject" not in inspect.signature(fn).parameters:
            continue
        marks = getattr(fn, "pytestmark", [])
        if any(m.name == "parametrize" and "subject" in str(m.args[0]) for m in marks):
            continue
        tests[name] = fn
    return tests


CONTRACT = _contract_tests()
globals().update(CONTRACT)  # collected here, run with this module's `subject` fixture


def test_the_shared_contract_is_reused() -> None:
    assert "test_start_runs_and_stop_stops_with_uptime_zero" in CONTRACT
    assert "test_deleted_vm_is_not_found" in CONTRACT
    assert not any("dummy" in name for name in CONTRACT)


def _cleanup(conn: Any) -> None:
    """Remove every LNVPS domain and volume, whatever an earlier test left."""
    for dom in conn.listAllDomains(0):
        if str(dom.name()).startswith("vm"):
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    for volume in conn.storagePoolLookupByName(POOL).listAllVolumes(0):
        volume.delete(0)


@pytest.fixture(autouse=True)
def conn() -> Iterator[Any]:
    """A connection held for the whole test.

    `test:///default` keeps one state per process while any connection to it is open and
    starts afresh when the last one closes; holding this one keeps the state stable across
    the adapters' own connections (a "restarted" client sees the same VMs). The cleanup
    before and after makes each test start empty even if some connection lingers.
    """
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    held = libvirt.open(URI)
    _cleanup(held)
    pool = held.storagePoolLookupByName(POOL)
    # the OS image in the pool, as downloading it onto the host would leave it
    image = f"<volume><name>{IMAGE}</name><capacity unit='bytes'>{2 * GIB}</capacity></volume>"
    pool.createXML(image, 0)
    yield held
    _cleanup(held)
    held.close()


def unicast_vm(vm_id: int) -> Vm:
    """The shared suite's VM with a unicast MAC: libvirt rejects its `ff:ff:ff:…` one."""
    return attrs.evolve(contract_vm(vm_id), mac_address=f"52:54:00:00:00:{vm_id:02x}")


@pytest.fixture(autouse=True)
def _unicast_macs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared tests build VMs with `contract.vm` (also inside `contract.info`)."""
    monkeypatch.setattr(contract, "vm", unicast_vm)


@pytest.fixture
async def subject() -> AsyncIterator[Subject]:
    clock = FakeClock(T0)
    hosts: list[LibvirtVmHost] = []

    def connect() -> VmHost:
        hosts.append(LibvirtVmHost(URI, clock, storage_pool=POOL, rng=random.Random(6)))
        return hosts[-1]

    first = connect()
    yield Subject("libvirt", first, clock, connect, VmRunState.STOPPED)
    for host in hosts:
        await host.aclose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def host(clock: FakeClock) -> AsyncIterator[LibvirtVmHost]:
    created = LibvirtVmHost(URI, clock, storage_pool=POOL, rng=random.Random(7))
    yield created
    await created.aclose()


def _inactive_xml(conn: Any, vm_id: int) -> str:
    return str(conn.lookupByName(domain_name(vm_id)).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def _volume(conn: Any, name: str) -> Any:
    return conn.storagePoolLookupByName(POOL).storageVolLookupByName(name)


# --- libvirt specifics ---------------------------------------------------------------------


async def test_create_defines_the_domain_from_the_template(host: LibvirtVmHost, conn: Any) -> None:
    mac = "52:54:00:aa:bb:cc"
    spec = attrs.evolve(info(3, cpu=3, memory=3 * GIB), vm=attrs.evolve(vm(3), mac_address=mac))
    await host.create_vm(spec)
    xml = _inactive_xml(conn, 3)
    assert "<name>vm3</name>" in xml
    assert "<memory unit='KiB'>3145728</memory>" in xml
    assert ">3</vcpu>" in xml
    assert "52:54:00:aa:bb:cc" in xml
    assert f"<source pool='{POOL}' volume='vm3-disk0'/>" in xml
    assert "<target dev='vda' bus='virtio'/>" in xml
    assert "<source network='default'/>" in xml
    assert int(_volume(conn, "vm3-disk0").info()[1]) == 40 * GIB


async def test_scsi_template_gets_a_virtio_scsi_disk(host: LibvirtVmHost, conn: Any) -> None:
    base = info(4)
    assert base.template is not None
    template = attrs.evolve(base.template, disk_interface=DiskInterface.SCSI)
    await host.create_vm(attrs.evolve(base, template=template))
    xml = _inactive_xml(conn, 4)
    assert "<target dev='sda' bus='scsi'/>" in xml
    assert "model='virtio-scsi'" in xml


async def test_a_second_create_of_the_same_vm_keeps_the_first(host: LibvirtVmHost) -> None:
    """The same spec again (a retried create whose first try outlived its wait, another
    worker's build) is accepted as built; a different one is refused (fatal)."""
    await host.create_vm(info(1))
    await host.start_vm(vm(1))
    await host.create_vm(info(1))
    assert (await host.get_vm_state(vm(1))).state is VmRunState.RUNNING
    other_mac = attrs.evolve(info(1), vm=attrs.evolve(vm(1), mac_address="52:54:00:aa:aa:aa"))
    for other in (other_mac, info(1, cpu=3)):
        with pytest.raises(VmHostError, match="already exists") as caught:
            await host.create_vm(other)
        assert caught.value.transient is False
    assert (await host.get_vm_state(vm(1))).state is VmRunState.RUNNING


async def test_a_domain_without_its_disk_is_not_taken_for_built(
    host: LibvirtVmHost, conn: Any
) -> None:
    await host.create_vm(info(1))
    _volume(conn, "vm1-disk0").delete(0)
    with pytest.raises(VmHostError, match="already exists"):
        await host.create_vm(info(1))


async def test_create_without_the_image_in_the_pool_fails_fatally(host: LibvirtVmHost) -> None:
    other = attrs.evolve(info(2), image=attrs.evolve(info(2).image, url="https://x/missing.qcow2"))
    with pytest.raises(VmHostError, match=r"missing\.qcow2 is not in storage pool") as caught:
        await host.create_vm(other)
    assert caught.value.transient is False
    with pytest.raises(VmNotFoundOnHost):
        await host.get_vm_state(vm(2))


async def test_power_calls_on_an_absent_vm_raise_not_found(host: LibvirtVmHost) -> None:
    for call in (host.start_vm, host.stop_vm, host.restart_vm):
        with pytest.raises(VmNotFoundOnHost):
            await call(vm(8))
    with pytest.raises(VmNotFoundOnHost):
        await host.reinstall_vm(info(8))
    await host.delete_vm(vm(8))  # already gone: fine


async def test_delete_removes_the_disk_volume_and_a_running_domain(
    host: LibvirtVmHost, conn: Any
) -> None:
    await host.create_vm(info(1))
    await host.start_vm(vm(1))
    await host.delete_vm(vm(1))
    with pytest.raises(libvirt.libvirtError):
        _volume(conn, "vm1-disk0")
    assert dict(await host.get_all_vm_states()) == {}


async def test_start_and_stop_are_idempotent(host: LibvirtVmHost) -> None:
    await host.create_vm(info(1))
    await host.stop_vm(vm(1))
    await host.start_vm(vm(1))
    await host.start_vm(vm(1))
    assert (await host.get_vm_state(vm(1))).state is VmRunState.RUNNING


async def test_a_started_vm_is_autostarted_and_a_stopped_one_is_not(
    host: LibvirtVmHost, conn: Any
) -> None:
    """A hypervisor reboot brings back what runs and leaves what was stopped (an expired
    VM) off."""
    await host.create_vm(info(1))
    dom = conn.lookupByName(domain_name(1))
    assert not dom.autostart()  # built, not started yet
    await host.start_vm(vm(1))
    assert dom.autostart()
    await host.stop_vm(vm(1))
    assert not dom.autostart()
    await host.restart_vm(vm(1))
    assert dom.autostart()


async def test_restart_of_a_stopped_vm_starts_it(host: LibvirtVmHost) -> None:
    await host.create_vm(info(1))
    await host.restart_vm(vm(1))
    assert (await host.get_vm_state(vm(1))).state is VmRunState.RUNNING


async def test_other_domains_are_not_listed(host: LibvirtVmHost, conn: Any) -> None:
    """`test:///default` comes with a running domain named `test`: not an LNVPS VM."""
    assert conn.lookupByName("test").isActive()
    await host.create_vm(info(12))
    assert sorted(await host.get_all_vm_states()) == [12]


async def test_resize_sets_cpu_and_memory_in_the_config(
    host: LibvirtVmHost, conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await host.create_vm(info(1))
    caplog.set_level(logging.WARNING)
    await host.resize_vm(info(1, cpu=4, memory=4 * GIB, disk=80 * GIB))
    xml = _inactive_xml(conn, 1)
    assert "<memory unit='KiB'>4194304</memory>" in xml
    assert "<currentMemory unit='KiB'>4194304</currentMemory>" in xml
    assert ">4</vcpu>" in xml
    # the test driver cannot resize volumes: logged and skipped
    assert "grow disk skipped" in caplog.text
    await host.resize_vm(info(1, cpu=1, memory=1 * GIB, disk=10 * GIB))
    xml = _inactive_xml(conn, 1)
    assert "<memory unit='KiB'>1048576</memory>" in xml
    assert ">1</vcpu>" in xml
    assert "not shrunk" in caplog.text


async def test_a_disk_growth_the_driver_cannot_do_fails_for_good_off_the_test_driver(
    host: LibvirtVmHost, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The skip is the test driver's only: elsewhere a paid disk upgrade the pool cannot
    apply must not report success (the worker gives the resize up and tells the admins)."""
    await host.create_vm(info(1, disk=10 * GIB))
    monkeypatch.setattr(libvirt_host, "is_test_driver", lambda _conn: False)
    with pytest.raises(VmHostError, match="not supported") as caught:
        await host.resize_vm(info(1, disk=80 * GIB))
    assert caught.value.transient is False
    assert int(_volume(conn, "vm1-disk0").info()[1]) == 10 * GIB


async def test_reinstall_clones_the_image_again_and_keeps_a_running_vm_running(
    host: LibvirtVmHost, conn: Any, clock: FakeClock
) -> None:
    await host.create_vm(info(1))
    await host.start_vm(vm(1))
    clock.advance(timedelta(minutes=5))
    await host.reinstall_vm(info(1))
    state = await host.get_vm_state(vm(1))
    assert (state.state, state.uptime) == (VmRunState.RUNNING, 0)
    assert int(_volume(conn, "vm1-disk0").info()[1]) == 40 * GIB
    _volume(conn, IMAGE).delete(0)  # without its image a reinstall cannot make a disk...
    with pytest.raises(VmHostError, match="not in storage pool"):
        await host.reinstall_vm(info(1))
    # ...and leaves the VM as it was
    assert (await host.get_vm_state(vm(1))).state is VmRunState.RUNNING
    assert int(_volume(conn, "vm1-disk0").info()[1]) == 40 * GIB


async def test_create_refuses_the_placeholder_or_a_multicast_mac(host: LibvirtVmHost) -> None:
    for mac in ("ff:ff:ff:ff:ff:ff", "ff:ff:ff:00:00:01", "nonsense"):
        spec = attrs.evolve(info(5), vm=attrs.evolve(vm(5), mac_address=mac))
        with pytest.raises(VmHostError, match="no unicast MAC") as caught:
            await host.create_vm(spec)
        assert caught.value.transient is False
    assert dict(await host.get_all_vm_states()) == {}


async def test_mac_has_the_qemu_prefix(host: LibvirtVmHost) -> None:
    assert (await host.generate_mac(vm(1))).startswith("52:54:00:")


async def test_running_usage_is_decimal_and_counters_are_read(host: LibvirtVmHost) -> None:
    await host.create_vm(info(1))
    await host.start_vm(vm(1))
    state = await host.get_vm_state(vm(1))
    assert isinstance(state.cpu_usage, Decimal) and isinstance(state.mem_usage, Decimal)
    assert state.net_in > 0 and state.disk_read > 0


def _error(code: int, origin: int) -> libvirt.libvirtError:
    exc = libvirt.libvirtError("boom")
    exc.err = (code, origin, "boom", 2, None, None, None, 0, 0)
    return exc


@pytest.mark.parametrize(
    ("code", "origin", "transient"),
    [
        (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC, True),  # socket refused
        (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_REMOTE, True),
        (libvirt.VIR_ERR_OPERATION_TIMEOUT, libvirt.VIR_FROM_QEMU, True),  # state lock
        (libvirt.VIR_ERR_RPC, libvirt.VIR_FROM_RPC, True),
        (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_FROM_NONE, True),
        (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_STORAGE, False),  # e.g. disk full
        (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_FROM_QEMU, False),
        (libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_FROM_DOMAIN, False),
        (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_QEMU, False),
    ],
)
def test_errors_are_classified(code: int, origin: int, transient: bool) -> None:
    err = classify(_error(code, origin), "start VM 1")
    assert err.transient is transient
    assert err.message == "libvirt start VM 1 failed: boom"


async def test_unreachable_hypervisor_is_transient() -> None:
    unreachable = LibvirtVmHost("qemu+tcp://127.0.0.1:1/system", FakeClock(T0))
    with pytest.raises(VmHostError) as caught:
        await unreachable.get_all_vm_states()
    assert caught.value.transient is True


async def test_usage_since_the_last_read(host: LibvirtVmHost, clock: FakeClock) -> None:
    await host.create_vm(info(1))
    await host.start_vm(vm(1))
    clock.advance(timedelta(seconds=10))
    first = await host.get_vm_state(vm(1))
    clock.advance(timedelta(seconds=10))
    second = await host.get_vm_state(vm(1))
    for state in (first, second):
        assert Decimal(0) <= state.cpu_usage <= Decimal(1)
        assert state.cpu_usage == state.cpu_usage.quantize(Decimal("0.0001"))


async def test_a_dead_connection_is_reopened(host: LibvirtVmHost, conn: Any) -> None:
    await host.create_vm(info(1))
    assert host._conn is not None
    host._conn.close()  # the link to libvirtd dies under the client
    assert sorted(await host.get_all_vm_states()) == [1]


async def test_a_paused_vm_is_unknown(host: LibvirtVmHost, conn: Any) -> None:
    await host.create_vm(info(1))
    await host.start_vm(vm(1))
    conn.lookupByName("vm1").suspend()
    state = await host.get_vm_state(vm(1))
    assert (state.state, state.uptime, state.cpu_usage) == (VmRunState.UNKNOWN, 0, Decimal(0))


async def test_a_custom_template_sizes_the_vm(host: LibvirtVmHost, conn: Any) -> None:
    custom = CustomTemplate(
        id=1,
        cpu=6,
        memory=6 * GIB,
        disk_size=60 * GIB,
        disk_type=DiskType.HDD,
        disk_interface=DiskInterface.SATA,
        pricing_id=1,
    )
    await host.create_vm(attrs.evolve(info(6), template=None, custom_template=custom))
    xml = _inactive_xml(conn, 6)
    assert ">6</vcpu>" in xml
    assert "<memory unit='KiB'>6291456</memory>" in xml
    assert "<target dev='sda' bus='sata'/>" in xml
    assert "discard" not in xml  # HDD
    assert int(_volume(conn, "vm6-disk0").info()[1]) == 60 * GIB


async def test_no_template_is_an_invalid_config(host: LibvirtVmHost) -> None:
    with pytest.raises(InvalidVmConfig):
        await host.create_vm(attrs.evolve(info(7), template=None))
    assert dict(await host.get_all_vm_states()) == {}


def test_the_resolver_builds_a_libvirt_client_from_the_host_row() -> None:
    from datetime import UTC, datetime

    from adapters.memory.clock import FakeClock
    from adapters.vmhost.dummy import DummyVmHost
    from adapters.vmhost.resolver import VmHostClients
    from domain.enums import VmHostKind
    from domain.model import Host

    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    row = Host(
        id=7,
        kind=VmHostKind.LIBVIRT,
        region_id=1,
        name="kvm",
        ip=URI,
        cpu=4,
        memory=1,
        enabled=True,
        api_token="",
    )
    defaults = VmHostClients(clock, DummyVmHost(None, clock)).for_host(row)
    assert isinstance(defaults, LibvirtVmHost) and defaults.storage_pool == "default"
    clients = VmHostClients(clock, DummyVmHost(None, clock), libvirt={"storage_pool": "default"})
    first = clients.for_host(row)
    assert isinstance(first, LibvirtVmHost)
    assert clients.for_host(row) is first


async def test_a_domain_kept_by_a_create_gets_the_disk_paid_for_now(
    host: LibvirtVmHost, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A domain left by an earlier build (before a paid disk upgrade) is kept only with the
    disk this create is for: it is grown, and where the pool cannot grow it the create fails
    for good (the admins are told) instead of reporting the smaller disk built (review r21)."""
    await host.create_vm(info(1, disk=10 * GIB))
    monkeypatch.setattr(libvirt_host, "is_test_driver", lambda _conn: False)
    with pytest.raises(VmHostError, match="not supported") as caught:
        await host.create_vm(info(1, disk=40 * GIB))
    assert caught.value.transient is False
    await host.create_vm(info(1, disk=10 * GIB))  # the same disk: kept as it is
