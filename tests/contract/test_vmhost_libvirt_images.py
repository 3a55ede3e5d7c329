"""libvirt OS image uploads cut off or run twice at once, on stand-ins of libvirt's objects
that keep volume contents (the test driver keeps none) and can lose their link midway."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest

libvirt = pytest.importorskip("libvirt")

from adapters.memory.clock import FakeClock  # noqa: E402
from adapters.vmhost import libvirt_host  # noqa: E402
from adapters.vmhost.libvirt_host import LibvirtVmHost  # noqa: E402
from ports.vmhost import VmHostError  # noqa: E402
from tests.contract.test_vmhost import T0, info  # noqa: E402

IMAGE_BYTES = b"Q" * (3 * 1024 * 1024)  # three upload chunks
NAME = "debian-12-genericcloud-amd64.raw"  # the volume of `info(1).image`


def _error(code: int) -> Any:
    exc = libvirt.libvirtError("boom")
    exc.err = (code, libvirt.VIR_FROM_RPC, "boom", 2, None, None, None, 0, 0)
    return exc


def _name_in(xml: str) -> str:
    return xml.split("<name>")[1].split("</name>")[0]


@attrs.define
class Server:
    """libvirtd's side: the pool's volumes (name → bytes) outlive any client link."""

    volumes: dict[str, bytearray] = attrs.field(factory=dict)
    #: the link whose upload hangs after its first chunk, until the link is closed
    cut: Any = None
    #: uploads that must all have begun before any goes on (two at once)
    together: threading.Barrier | None = None


@attrs.define(eq=False)
class Link:
    server: Server
    closed: threading.Event = attrs.field(factory=threading.Event)

    def isAlive(self) -> bool:  # noqa: N802 (libvirt's names)
        return not self.closed.is_set()

    def setKeepAlive(self, *_: int) -> int:  # noqa: N802
        return 0

    def close(self) -> int:
        self.closed.set()
        return 0

    def getType(self) -> str:  # noqa: N802
        return "QEMU"

    def storagePoolLookupByName(self, name: str) -> Pool:  # noqa: N802
        return Pool(self)

    def newStream(self, flags: int) -> Stream:  # noqa: N802
        return Stream(self)


@attrs.define
class Pool:
    link: Link

    def refresh(self, flags: int) -> int:
        return 0

    def storageVolLookupByName(self, name: str) -> Volume:  # noqa: N802
        if name not in self.link.server.volumes:
            raise _error(libvirt.VIR_ERR_NO_STORAGE_VOL)
        return Volume(self.link, name)

    def createXML(self, xml: str, flags: int) -> Volume:  # noqa: N802
        return self._new(_name_in(xml), bytearray())

    def createXMLFrom(self, xml: str, source: Volume, flags: int) -> Volume:  # noqa: N802
        return self._new(_name_in(xml), bytearray(self.link.server.volumes[source.volume_name]))

    def _new(self, name: str, data: bytearray) -> Volume:
        if name in self.link.server.volumes:
            raise _error(libvirt.VIR_ERR_STORAGE_VOL_EXIST)
        self.link.server.volumes[name] = data
        return Volume(self.link, name)


@attrs.define
class Volume:
    link: Link
    volume_name: str

    def name(self) -> str:
        return self.volume_name

    def info(self) -> list[int]:
        size = len(self.link.server.volumes[self.volume_name])
        return [0, size, size]

    def XMLDesc(self, flags: int) -> str:  # noqa: N802
        return (
            f"<volume><name>{self.volume_name}</name><target><format type='raw'/></target></volume>"
        )

    def upload(self, stream: Stream, offset: int, length: int, flags: int) -> int:
        stream.target = self.volume_name
        return 0

    def delete(self, flags: int) -> int:
        if self.link.closed.is_set():
            raise _error(libvirt.VIR_ERR_INVALID_CONN)
        self.link.server.volumes.pop(self.volume_name, None)
        return 0


@attrs.define
class Stream:
    link: Link
    target: str = ""

    def send(self, data: bytes) -> int:
        server = self.link.server
        received = server.volumes[self.target]
        if received and self.link is server.cut:  # a dead ssh link: no answer until closed
            self.link.closed.wait(10)
            raise _error(libvirt.VIR_ERR_RPC)
        if not received and server.together is not None:
            server.together.wait(10)
        received += data
        return len(data)

    def finish(self) -> int:
        return 0

    def abort(self) -> int:
        if self.link.closed.is_set():
            raise _error(libvirt.VIR_ERR_INVALID_CONN)
        return 0


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Server:
    """`libvirt.open` links to one server; each download yields the checked image file."""
    served = Server()
    downloads: list[Path] = []

    def open_link(uri: str) -> Link:
        return Link(served)

    async def fake_download(image: Any, directory: str | None = None) -> Path:
        downloads.append(tmp_path / f"img{len(downloads)}")
        downloads[-1].write_bytes(IMAGE_BYTES)
        return downloads[-1]

    monkeypatch.setattr(libvirt, "open", open_link)
    monkeypatch.setattr(libvirt_host, "download_image", fake_download)
    return served


def _host(timeout_s: float = 30) -> LibvirtVmHost:
    uri = "qemu+ssh://root@kvm1/system"
    return LibvirtVmHost(uri, FakeClock(T0), storage_pool="p", long_call_timeout_s=timeout_s)


async def test_a_cut_off_upload_leaves_no_image_and_the_retry_stores_it_whole(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review r17: the truncated upload was left under the image's name (its rollback
    delete ran over the dead link) and the retry took it for the image."""
    host = _host(timeout_s=0.5)
    served_open = libvirt.open

    def first_link_dies(uri: str) -> Link:
        link: Link = served_open(uri)
        if server.cut is None:
            server.cut = link
        return link

    monkeypatch.setattr(libvirt, "open", first_link_dies)
    try:
        with pytest.raises(VmHostError, match="no answer") as caught:
            await host.download_os_image(info(1).image)
        assert caught.value.transient
        await asyncio.sleep(0.3)  # the stuck upload thread ends; its cleanup fails
        assert NAME not in server.volumes  # only the cut-off upload's own volume is left

        assert await host.download_os_image(info(1).image) is True
        assert server.volumes[NAME] == IMAGE_BYTES
        assert await host.download_os_image(info(1).image) is False
    finally:
        await host.aclose()


async def test_two_downloads_of_one_image_at_once_keep_each_others_upload(
    server: Server,
) -> None:
    server.together = threading.Barrier(2)
    hosts = [_host(), _host()]  # two workers, a connection each
    try:
        fetched = await asyncio.gather(*(h.download_os_image(info(1).image) for h in hosts))
    finally:
        for host in hosts:
            await host.aclose()
    assert sorted(fetched) == [False, True]  # the second found the first's copy
    assert set(server.volumes) == {NAME}  # both uploads cleaned up after themselves
    assert server.volumes[NAME] == IMAGE_BYTES
