"""libvirt calls over a hung link: a per-call timeout (transient), the host's own threads, a
connect that hangs holds no lock, a dropped connection is opened again; no libvirtd needed."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

libvirt = pytest.importorskip("libvirt")

from adapters.memory.clock import FakeClock  # noqa: E402
from adapters.vmhost.libvirt_host import LibvirtVmHost  # noqa: E402
from ports.vmhost import VmHostError  # noqa: E402
from tests.contract.test_vmhost import T0  # noqa: E402

URI = "qemu+ssh://root@kvm1/system"


class HungLink:
    """A connection whose domain listing blocks until `release` (a dead qemu+ssh link)."""

    def __init__(self, hang: bool) -> None:
        self.hang = hang
        self.release = threading.Event()
        self.threads: list[str] = []
        self.closed = False
        self.keepalive: tuple[int, int] | None = None

    def isAlive(self) -> bool:  # noqa: N802 - libvirt's name
        return not self.closed

    def setKeepAlive(self, interval: int, count: int) -> int:  # noqa: N802
        self.keepalive = (interval, count)
        return 0

    def listAllDomains(self, flags: int) -> list[Any]:  # noqa: N802
        self.threads.append(threading.current_thread().name)
        if self.hang:
            self.release.wait(10)
        return []

    def close(self) -> int:
        self.closed = True
        self.release.set()
        return 0


@pytest.fixture
def links(monkeypatch: pytest.MonkeyPatch) -> list[HungLink]:
    """Each `libvirt.open` gives a new link; the first one hangs."""
    opened: list[HungLink] = []

    def open_link(uri: str) -> HungLink:
        opened.append(HungLink(hang=not opened))
        return opened[-1]

    monkeypatch.setattr(libvirt, "open", open_link)
    return opened


async def test_a_hung_call_times_out_transiently_and_the_next_call_reconnects(
    links: list[HungLink],
) -> None:
    host = LibvirtVmHost(URI, FakeClock(T0), call_timeout_s=0.2)
    with pytest.raises(VmHostError, match=r"no answer within 0\.2 s") as caught:
        await asyncio.wait_for(host.get_all_vm_states(), 5)
    assert caught.value.transient is True

    assert await asyncio.wait_for(host.get_all_vm_states(), 5) == {}
    assert len(links) == 2 and links[0].closed  # the hung link was dropped and closed
    assert links[1].keepalive == (5, 3)
    assert all(name.startswith("libvirt") for link in links for name in link.threads)
    await host.aclose()


async def test_a_hung_connect_blocks_neither_close_nor_other_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()

    def hanging_open(uri: str) -> Any:
        release.wait(10)
        raise libvirt.libvirtError("gave up")

    monkeypatch.setattr(libvirt, "open", hanging_open)
    host = LibvirtVmHost(URI, FakeClock(T0), call_timeout_s=0.2)
    with pytest.raises(VmHostError, match="no answer") as caught:
        await asyncio.wait_for(host.get_all_vm_states(), 5)
    assert caught.value.transient is True
    # the stuck thread is the host's own: the default pool still works
    assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), 5) == 42
    await asyncio.wait_for(host.aclose(), 2)  # the connect holds no lock close needs
    release.set()


def test_call_timeouts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LibvirtVmHost(URI, FakeClock(T0), call_timeout_s=0)
