"""Proxmox OS image downloads (`download-url`, checksum) and `rrddata` metrics on the fake node."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import attrs
import pytest

from adapters.memory.clock import FakeClock
from adapters.vmhost.proxmox import ProxmoxVmHost
from ports.vmhost import VmHostError, VmNotFoundOnHost
from tests.contract.test_vmhost import T0, T0_S, info, proxmox_config, vm
from tests.fakes.fake_proxmox import MIB, FakeProxmox
from tests.fakes.image_server import IMAGE_BYTES, ImageServer

VOLID = "local:import/debian-12.qcow2"


@pytest.fixture
async def node() -> AsyncIterator[tuple[FakeProxmox, ProxmoxVmHost, FakeClock]]:
    clock = FakeClock(T0)
    fake = FakeProxmox(clock)
    async with fake.serve() as url:
        host = ProxmoxVmHost(proxmox_config(url), clock, rng=random.Random(5))
        yield fake, host, clock
        await host.aclose()


async def test_download_url_sends_the_checksum_and_the_node_stores_the_image(
    node: tuple[FakeProxmox, ProxmoxVmHost, FakeClock], image_server: ImageServer
) -> None:
    fake, host, _ = node
    image = image_server.image(sha2="sha512")
    assert await host.download_os_image(image) is True
    [sent] = fake.calls("POST", "/storage/local/download-url")
    assert sent == {
        "url": image.url,
        "content": "import",
        "filename": "debian-12.qcow2",
        "checksum-algorithm": "sha512",
        "checksum": hashlib.sha512(IMAGE_BYTES).hexdigest(),
    }
    assert fake.volumes == {VOLID: IMAGE_BYTES}
    assert await host.download_os_image(image) is False
    assert len(fake.calls("POST", "/download-url")) == 1


async def test_a_checksum_mismatch_fails_and_stores_nothing(
    node: tuple[FakeProxmox, ProxmoxVmHost, FakeClock], image_server: ImageServer
) -> None:
    fake, host, _ = node
    wrong = image_server.image(sha2="0" * 64)
    with pytest.raises(VmHostError, match="checksum mismatch") as caught:
        await host.download_os_image(wrong)
    assert caught.value.transient is False
    assert fake.volumes == {}
    assert await host.download_os_image(image_server.image()) is True


async def test_an_image_without_a_checksum_is_downloaded_unchecked(
    node: tuple[FakeProxmox, ProxmoxVmHost, FakeClock], image_server: ImageServer
) -> None:
    fake, host, _ = node
    assert await host.download_os_image(image_server.image(sha2=None)) is True
    [sent] = fake.calls("POST", "/download-url")
    assert "checksum" not in sent and fake.volumes == {VOLID: IMAGE_BYTES}


async def test_a_digest_of_no_sha2_length_is_refused_before_any_call(
    node: tuple[FakeProxmox, ProxmoxVmHost, FakeClock], image_server: ImageServer
) -> None:
    fake, host, _ = node
    with pytest.raises(VmHostError, match="SHA-256 or SHA-512"):
        await host.download_os_image(image_server.image(sha2="abc123"))
    assert fake.calls("POST", "/download-url") == []


async def test_rrddata_becomes_fractions_and_rates(
    node: tuple[FakeProxmox, ProxmoxVmHost, FakeClock],
) -> None:
    fake, host, clock = node
    await host.create_vm(info(1, memory=2048 * MIB))
    clock.advance(timedelta(minutes=30))
    points = list(await host.get_time_series(vm(1)))
    [query] = fake.calls("GET", "/qemu/101/rrddata")
    assert query == {"timeframe": "hour", "cf": "AVERAGE"}
    assert len(points) == 70
    assert points[-1].timestamp == (T0_S + 1800) // 60 * 60 - 60
    running = [p for p in points if p.timestamp >= T0_S]
    off = [p for p in points if p.timestamp < T0_S]
    assert len(running) == 30 and len(off) == 40
    last = running[-1]
    assert (last.cpu, last.memory, last.memory_size) == (
        Decimal("0.0231"),
        Decimal("0.25"),
        2048 * MIB,
    )
    assert (last.net_in, last.net_out) == (Decimal("1000.5"), Decimal(500))
    assert (last.disk_read, last.disk_write) == (Decimal(4096), Decimal("2048.25"))
    assert (off[0].cpu, off[0].memory, off[0].net_in) == (Decimal(0), Decimal(0), Decimal(0))


async def test_rrddata_of_a_missing_guest_is_not_found(
    node: tuple[FakeProxmox, ProxmoxVmHost, FakeClock],
) -> None:
    _, host, _ = node
    with pytest.raises(VmNotFoundOnHost):
        await host.get_time_series(vm(9))


async def test_the_checksum_comes_from_the_sums_file_when_sha2_is_not_set(
    node: tuple[FakeProxmox, ProxmoxVmHost, FakeClock], image_server: ImageServer
) -> None:
    fake, host, _ = node
    digest = hashlib.sha512(IMAGE_BYTES).hexdigest()
    sums = f"{'0' * 128}  other.qcow2\n{digest}  debian-12.qcow2\n"
    image_server.files["SHA512SUMS"] = sums.encode()
    image = attrs.evolve(
        image_server.image(sha2=None), sha2_url=f"{image_server.base_url}/images/SHA512SUMS"
    )
    assert await host.download_os_image(image) is True
    [sent] = fake.calls("POST", "/download-url")
    assert (sent["checksum-algorithm"], sent["checksum"]) == ("sha512", digest)
    unlisted = attrs.evolve(
        image_server.image("debian-13.qcow2", sha2=None), sha2_url=image.sha2_url
    )
    with pytest.raises(VmHostError, match=r"lists no SHA-256/SHA-512 for debian-13\.qcow2"):
        await host.download_os_image(unlisted)
    missing = attrs.evolve(unlisted, sha2_url=f"{image_server.base_url}/images/NOPE")
    with pytest.raises(VmHostError, match="HTTP 404"):
        await host.download_os_image(missing)
    assert len(fake.calls("POST", "/download-url")) == 1


async def test_a_download_whose_task_warns_is_done(
    node: tuple[FakeProxmox, ProxmoxVmHost, FakeClock], image_server: ImageServer
) -> None:
    fake, host, _ = node
    fake.warn_tasks("download")
    assert await host.download_os_image(image_server.image()) is True
    assert fake.volumes == {VOLID: IMAGE_BYTES}
