"""libvirt cloud-init seed ISO and OS image downloads on `test:///default` (and stream uploads)."""

from __future__ import annotations

import hashlib
import random
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import attrs
import pytest
import yaml

try:
    import libvirt
except ImportError as exc:  # pragma: no cover - depends on the machine
    pytest.skip(f"libvirt-python not importable: {exc}", allow_module_level=True)

from adapters.memory.clock import FakeClock
from adapters.vmhost import (
    libvirt_host,
    libvirt_volumes,
)
from adapters.vmhost.cloud_init import read_seed_iso
from adapters.vmhost.libvirt_host import LibvirtVmHost
from adapters.vmhost.libvirt_volumes import upload
from domain.model import IpAssignment, IpRange
from ports.vmhost import FullVmInfo, VmHostError
from tests.contract.test_vmhost import T0, info
from tests.contract.test_vmhost_libvirt import IMAGE, POOL, URI, unicast_vm
from tests.contract.test_vmhost_libvirt import conn as conn
from tests.fakes.image_server import IMAGE_BYTES, ImageServer

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample alice@laptop"


def networked(vm_id: int) -> FullVmInfo:
    base = info(vm_id)
    ips = (
        IpAssignment(id=1, vm_id=vm_id, ip_range_id=1, ip="185.18.221.14"),
        IpAssignment(id=2, vm_id=vm_id, ip_range_id=2, ip="2a13:2c0::1234"),
    )
    ranges = (
        IpRange(id=1, cidr="185.18.221.0/25", enabled=True, region_id=1, gateway="185.18.221.1/24"),
        IpRange(id=2, cidr="2a13:2c0::/64", enabled=True, region_id=1, gateway="2a13:2c0::1"),
    )
    return attrs.evolve(
        base,
        vm=unicast_vm(vm_id),
        ips=ips,
        ranges=ranges,
        ssh_key=attrs.evolve(base.ssh_key, key_data=KEY),
    )


@pytest.fixture
async def host() -> AsyncIterator[LibvirtVmHost]:
    created = LibvirtVmHost(
        URI,
        FakeClock(T0),
        storage_pool=POOL,
        rng=random.Random(8),
        nameservers=("1.1.1.1", "2606:4700:4700::1111"),
    )
    yield created
    await created.aclose()


@pytest.fixture
def uploads(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bytes]]:
    """The bytes written into each volume (the test driver itself keeps no contents)."""
    seen: dict[str, bytes] = {}
    real = libvirt_volumes.write_volume

    def recording(
        conn: Any, pool: Any, name: str, chunks: Iterable[bytes], size: int, fmt: str = "raw"
    ) -> Any:
        data = b"".join(chunks)
        seen[name] = data
        return real(conn, pool, name, [data], size, fmt)

    monkeypatch.setattr(libvirt_host, "write_volume", recording)  # seed ISOs
    monkeypatch.setattr(libvirt_volumes, "write_volume", recording)  # image uploads
    yield seen


async def test_create_writes_a_cidata_seed_and_attaches_it_as_a_cdrom(
    host: LibvirtVmHost, conn: Any, uploads: dict[str, bytes]
) -> None:
    await host.create_vm(networked(4))
    label, files = read_seed_iso(uploads["vm4-cidata.iso"])
    assert label == "cidata"
    assert files["user-data"].startswith("#cloud-config\n")
    user = yaml.safe_load(files["user-data"])
    assert user["ssh_authorized_keys"] == [KEY] and user["hostname"] == "vm4"
    assert yaml.safe_load(files["meta-data"]) == {
        "instance-id": "lnvps-vm4",
        "local-hostname": "vm4",
    }
    net = yaml.safe_load(files["network-config"])
    assert net == {
        "version": 2,
        "ethernets": {
            "eth0": {
                "match": {"macaddress": "52:54:00:00:00:04"},
                "set-name": "eth0",
                "dhcp4": False,
                "dhcp6": False,
                "addresses": ["185.18.221.14/24", "2a13:2c0::1234/64"],
                "routes": [
                    {"to": "0.0.0.0/0", "via": "185.18.221.1"},
                    {"to": "::/0", "via": "2a13:2c0::1"},
                ],
                "nameservers": {"addresses": ["1.1.1.1", "2606:4700:4700::1111"]},
            }
        },
    }
    pool = conn.storagePoolLookupByName(POOL)
    assert int(pool.storageVolLookupByName("vm4-cidata.iso").info()[1]) == len(
        uploads["vm4-cidata.iso"]
    )
    xml = ET.fromstring(conn.lookupByName("vm4").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    [cdrom] = [d for d in xml.iter("disk") if d.get("device") == "cdrom"]
    source, target = cdrom.find("source"), cdrom.find("target")
    assert source is not None and target is not None
    assert source.attrib == {"pool": POOL, "volume": "vm4-cidata.iso"}
    assert target.attrib == {"dev": "sda", "bus": "sata"}
    assert cdrom.find("readonly") is not None


async def test_delete_removes_the_seed_and_reinstall_writes_a_new_instance(
    host: LibvirtVmHost, conn: Any, uploads: dict[str, bytes]
) -> None:
    await host.create_vm(networked(5))
    built = networked(5)  # the owner changed the VM's key since it was built
    changed = attrs.evolve(built.ssh_key, id=2, key_data="ssh-ed25519 BBBB new")
    await host.reinstall_vm(attrs.evolve(built, ssh_key=changed))
    _, files = read_seed_iso(uploads["vm5-cidata.iso"])
    assert yaml.safe_load(files["meta-data"])["instance-id"] == f"lnvps-vm5-{int(T0.timestamp())}"
    assert yaml.safe_load(files["user-data"])["ssh_authorized_keys"] == ["ssh-ed25519 BBBB new"]
    await host.delete_vm(unicast_vm(5))
    names = {v.name() for v in conn.storagePoolLookupByName(POOL).listAllVolumes(0)}
    assert "vm5-cidata.iso" not in names and "vm5-disk0" not in names


async def test_a_failed_seed_write_leaves_no_disk_and_no_domain(
    host: LibvirtVmHost, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise VmHostError("libvirt stream refused data (-1)", transient=True)

    monkeypatch.setattr(libvirt_host, "write_volume", broken)
    with pytest.raises(VmHostError, match="stream refused"):
        await host.create_vm(networked(6))
    names = {v.name() for v in conn.storagePoolLookupByName(POOL).listAllVolumes(0)}
    assert "vm6-disk0" not in names
    assert "vm6" not in {d.name() for d in conn.listAllDomains(0)}


async def test_download_stores_the_checked_image_once(
    host: LibvirtVmHost, conn: Any, image_server: ImageServer, uploads: dict[str, bytes]
) -> None:
    image = image_server.image("bookworm.qcow2", sha2="sha512")
    assert await host.download_os_image(image) is True
    [(part, data)] = uploads.items()  # uploaded under a name of its own, then copied
    assert part.startswith("bookworm.qcow2.part-") and data == IMAGE_BYTES
    pool = conn.storagePoolLookupByName(POOL)
    volume = pool.storageVolLookupByName("bookworm.qcow2")
    assert int(volume.info()[1]) == len(IMAGE_BYTES)
    assert {v.name() for v in pool.listAllVolumes(0)} == {IMAGE, "bookworm.qcow2"}
    assert await host.download_os_image(image) is False
    assert image_server.hits["bookworm.qcow2"] == 1


async def test_a_checksum_mismatch_leaves_nothing_in_the_pool(
    host: LibvirtVmHost, conn: Any, image_server: ImageServer, tmp_path: Any
) -> None:
    host.download_dir = str(tmp_path)
    wrong = image_server.image("bad.qcow2", sha2=hashlib.sha256(b"other").hexdigest())
    with pytest.raises(VmHostError, match="sha256 mismatch") as caught:
        await host.download_os_image(wrong)
    assert caught.value.transient is False
    names = {v.name() for v in conn.storagePoolLookupByName(POOL).listAllVolumes(0)}
    assert "bad.qcow2" not in names
    assert list(tmp_path.iterdir()) == []  # the partial download is gone too


async def test_a_sums_file_checks_the_download(
    host: LibvirtVmHost, conn: Any, image_server: ImageServer
) -> None:
    image_server.files["SHA256SUMS"] = f"{hashlib.sha256(b'x').hexdigest()} *bad.img\n".encode()
    image = attrs.evolve(
        image_server.image("bad.img", sha2=None),
        sha2_url=f"{image_server.base_url}/images/SHA256SUMS",
    )
    with pytest.raises(VmHostError, match="sha256 mismatch"):
        await host.download_os_image(image)
    names = {v.name() for v in conn.storagePoolLookupByName(POOL).listAllVolumes(0)}
    assert "bad.img" not in names


async def test_a_missing_file_is_a_fatal_http_error(
    host: LibvirtVmHost, image_server: ImageServer
) -> None:
    image = attrs.evolve(image_server.image(), url=f"{image_server.base_url}/images/nope.raw")
    with pytest.raises(VmHostError, match="HTTP 404") as caught:
        await host.download_os_image(image)
    assert caught.value.transient is False


# --- the stream upload, on stand-ins of libvirt's objects (the test driver cannot upload) --


class FakeStream:
    def __init__(self, per_send: int, fail_after: int | None = None) -> None:
        self.per_send = per_send
        self.fail_after = fail_after
        self.received = b""
        self.finished = self.aborted = False

    def send(self, data: bytes) -> int:
        if self.fail_after is not None and len(self.received) >= self.fail_after:
            raise libvirt.libvirtError("stream broke")
        taken = data[: self.per_send]
        self.received += taken
        return len(taken)

    def finish(self) -> None:
        self.finished = True

    def abort(self) -> None:
        self.aborted = True


@attrs.define
class FakeConn:
    stream: FakeStream

    def newStream(self, flags: int) -> FakeStream:  # noqa: N802 (libvirt's name)
        return self.stream

    def getType(self) -> str:  # noqa: N802
        return "QEMU"


@attrs.define
class FakeVolume:
    uploads: list[tuple[int, int]] = attrs.field(factory=list)

    def upload(self, stream: FakeStream, offset: int, length: int, flags: int) -> None:
        self.uploads.append((offset, length))


def test_upload_sends_every_byte_even_in_partial_sends() -> None:
    stream, volume = FakeStream(per_send=1000), FakeVolume()
    upload(FakeConn(stream), volume, [IMAGE_BYTES[:5000], IMAGE_BYTES[5000:]], len(IMAGE_BYTES))
    assert stream.received == IMAGE_BYTES and stream.finished and not stream.aborted
    assert volume.uploads == [(0, len(IMAGE_BYTES))]


def test_a_broken_stream_is_aborted() -> None:
    stream = FakeStream(per_send=4096, fail_after=8192)
    with pytest.raises(libvirt.libvirtError):
        upload(FakeConn(stream), FakeVolume(), [IMAGE_BYTES], len(IMAGE_BYTES))
    assert stream.aborted and not stream.finished
