"""A libvirt create that timed out but still runs in its thread: no second build (nor a
delete) of that VM starts until it ends: a second create waits for it and keeps the domain
it defined, or gives up while it still runs; a half-made VM is removed by the spawn's
leftover step and built clean. Two clients (two worker processes) building one VM at once
leave it defined with its disk. On libvirt's `test:///default` driver."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import pytest

libvirt = pytest.importorskip("libvirt")

from adapters.memory.clock import FakeClock  # noqa: E402
from adapters.vmhost.libvirt_host import LibvirtVmHost  # noqa: E402
from app.worker.context import HostRetry, WorkerDeps  # noqa: E402
from app.worker.provisioning import _remove_leftover  # noqa: E402
from ports.vmhost import (  # noqa: E402
    VmBuildInProgress,
    VmHostError,
    VmNotFoundOnHost,
)
from tests.contract.test_vmhost import T0, info  # noqa: E402
from tests.contract.test_vmhost_libvirt import (  # noqa: E402, F401 - fixtures
    POOL,
    URI,
    _unicast_macs,
    conn,
    vm,
)

VM_ID = 5


class SlowDefine:
    """A link whose `defineXML` waits until `release`, then defines the domain."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.entered = threading.Event()
        self.release = threading.Event()
        self.defines = 0

    def defineXML(self, xml: str) -> Any:  # noqa: N802 - libvirt's name
        self.defines += 1
        self.entered.set()
        self.release.wait(10)
        return self.real.defineXML(xml)

    def close(self) -> int:
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class LostDefine:
    """A link whose `defineXML` hangs until `release`; libvirtd then defines the domain but
    the answer is lost (an error), as over a qemu+ssh link that died mid-call. Closing the
    link does not free the hung call."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.release = threading.Event()
        self.entered = threading.Event()
        self.defines = 0
        self.closed = False

    def defineXML(self, xml: str) -> Any:  # noqa: N802 - libvirt's name
        self.defines += 1
        self.entered.set()
        self.release.wait(10)
        self.real.defineXML(xml)
        raise libvirt.libvirtError("answer lost")

    def close(self) -> int:
        self.closed = True
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def links(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The first `libvirt.open` gives a `LostDefine` link, later ones plain connections."""
    real_open = libvirt.open
    opened: list[Any] = []

    def open_link(uri: str) -> Any:
        link = real_open(uri)
        opened.append(LostDefine(link) if not opened else link)
        return opened[-1]

    monkeypatch.setattr(libvirt, "open", open_link)
    return opened


@pytest.fixture
async def host() -> AsyncIterator[LibvirtVmHost]:
    created = LibvirtVmHost(URI, FakeClock(T0), storage_pool=POOL, long_call_timeout_s=0.3)
    yield created
    await created.aclose()


async def _no_sleep(_seconds: float) -> None:
    return None


DEPS = cast(WorkerDeps, SimpleNamespace(retry=HostRetry(sleep=_no_sleep)))


async def _ended(host: LibvirtVmHost, vm_id: int) -> None:
    for _ in range(500):
        if not host.is_building(vm_id):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the create of VM {vm_id} never ended")


async def test_a_create_still_running_after_its_timeout_holds_a_second_one_back(
    host: LibvirtVmHost,
    links: list[Any],
    conn: Any,  # noqa: F811 - the fixture
) -> None:
    with pytest.raises(VmHostError, match="no answer within") as timed_out:
        await host.create_vm(info(VM_ID))
    assert timed_out.value.transient is True
    hung = links[0]
    assert hung.entered.is_set() and hung.closed  # the thread still hangs on a closed link
    assert host.is_building(VM_ID)

    # the retried spawn: nothing on the host yet, so no leftover; its create waits for the
    # running build within its own limit, then gives up
    await _remove_leftover(DEPS, host, vm(VM_ID))
    with pytest.raises(VmBuildInProgress) as busy:
        await host.create_vm(info(VM_ID))
    assert busy.value.transient is True
    with pytest.raises(VmBuildInProgress):
        await host.delete_vm(vm(VM_ID))
    with pytest.raises(VmBuildInProgress):
        await host.reinstall_vm(info(VM_ID))
    assert hung.defines == 1  # no second build was started

    hung.release.set()
    await _ended(host, VM_ID)
    # the first create's domain was defined, its answer lost: its volumes are kept with it
    assert conn.lookupByName(f"vm{VM_ID}").name() == f"vm{VM_ID}"
    assert conn.storagePoolLookupByName(POOL).storageVolLookupByName(f"vm{VM_ID}-disk0")

    await _remove_leftover(DEPS, host, vm(VM_ID))  # removes it
    with pytest.raises(VmNotFoundOnHost):
        await host.get_vm_state(vm(VM_ID))
    await host.create_vm(info(VM_ID))  # allowed again, and builds the VM clean
    assert not host.is_building(VM_ID)
    pool = conn.storagePoolLookupByName(POOL)
    assert pool.storageVolLookupByName(f"vm{VM_ID}-disk0") is not None
    assert hung.defines == 1 and len(links) >= 2


async def test_a_closed_client_refuses_for_good_even_while_a_build_still_runs(
    host: LibvirtVmHost,
    links: list[Any],
    conn: Any,  # noqa: F811 - the fixture
) -> None:
    """Closed wins over the build still running in its thread: the refusal is final (a
    retry on this client cannot succeed), not the transient `VmBuildInProgress`."""
    with pytest.raises(VmHostError, match="no answer within"):
        await host.create_vm(info(VM_ID))
    assert host.is_building(VM_ID)
    await host.aclose()
    for call in (host.create_vm(info(VM_ID)), host.reinstall_vm(info(VM_ID))):
        with pytest.raises(VmHostError, match="is closed") as closed:
            await call
        assert type(closed.value) is VmHostError and closed.value.transient is False
    with pytest.raises(VmHostError, match="is closed"):
        await host.get_vm_state(vm(VM_ID))
    links[0].release.set()
    await _ended(host, VM_ID)


async def test_a_second_create_waits_for_the_running_build_and_keeps_its_domain(
    host: LibvirtVmHost,
    conn: Any,  # noqa: F811 - the fixture
) -> None:
    slow = SlowDefine(host._connection())
    host._conn = slow
    with pytest.raises(VmHostError, match="no answer within"):
        await host.create_vm(info(VM_ID))  # the define outlives the call's limit
    assert host.is_building(VM_ID)

    retried = asyncio.ensure_future(host.create_vm(info(VM_ID)))  # the spawn's retry
    await asyncio.sleep(0.05)
    slow.release.set()  # the build ends within the retry's wait
    await retried
    assert slow.defines == 1  # built once
    dom = conn.lookupByName(f"vm{VM_ID}")
    assert not dom.isActive()  # left stopped: the spawn starts it
    assert conn.storagePoolLookupByName(POOL).storageVolLookupByName(f"vm{VM_ID}-disk0")


async def test_two_clients_building_one_vm_leave_it_with_its_disk(
    conn: Any,  # noqa: F811 - the fixture
) -> None:
    """A second worker process builds the VM while the first one's define still runs: the
    first define fails ("already exists") and keeps the volumes the defined domain uses;
    its retry keeps that domain."""
    first = LibvirtVmHost(URI, FakeClock(T0), storage_pool=POOL)
    second = LibvirtVmHost(URI, FakeClock(T0), storage_pool=POOL)
    try:
        slow = SlowDefine(first._connection())
        first._conn = slow
        building = asyncio.ensure_future(first.create_vm(info(VM_ID)))
        await asyncio.to_thread(slow.entered.wait, 5)
        await second.create_vm(info(VM_ID))
        slow.release.set()
        with pytest.raises(VmHostError, match="already exists"):
            await building
        names = {v.name() for v in conn.storagePoolLookupByName(POOL).listAllVolumes(0)}
        assert {f"vm{VM_ID}-disk0", f"vm{VM_ID}-cidata.iso"} <= names
        await first.create_vm(info(VM_ID))  # the first spawn's retry
        await first.start_vm(vm(VM_ID))
        assert conn.lookupByName(f"vm{VM_ID}").isActive()
    finally:
        await first.aclose()
        await second.aclose()


def test_a_long_time_limit_is_accepted() -> None:
    """The worker renews its lease while a call runs, so no limit is too long for it."""
    host = LibvirtVmHost(URI, FakeClock(T0), long_call_timeout_s=4 * 3600)
    assert host.long_call_timeout_s == 4 * 3600
    host.close()
