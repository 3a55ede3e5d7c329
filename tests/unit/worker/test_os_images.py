"""DownloadOsImages: the image onto every enabled host (or one), retries, admin notice."""

from __future__ import annotations

import attrs
import pytest

from app.worker.loop import drain
from app.worker.os_images import DownloadReport, ImageDownloadFailed, download_os_images
from domain.enums import VmHostKind
from domain.model import GIB, Host, OsImage
from ports.jobs import DownloadOsImages, InvalidJob
from ports.vmhost import VmHostError
from tests.unit.worker.world import OneHost, World


async def _more_hosts(world: World) -> tuple[int, int]:
    """A second enabled host and a disabled one; their ids."""
    ids = []
    async with world.shop.factory() as uow:
        for name, enabled in (("h2", True), ("h3", False)):
            host = await uow.hosts.add(
                Host(
                    id=0,
                    kind=VmHostKind.DUMMY,
                    region_id=1,
                    name=name,
                    ip="10.0.0.2",
                    cpu=8,
                    memory=32 * GIB,
                    enabled=enabled,
                    api_token="",
                )
            )
            ids.append(host.id)
        await uow.commit()
    return ids[0], ids[1]


async def test_the_job_downloads_onto_every_enabled_host_once(world: World) -> None:
    second, _disabled = await _more_hosts(world)
    await world.queue.send(DownloadOsImages(image_id=1))
    assert await drain(world.queue, world.handlers) == 1
    assert world.host.calls["download_os_image"] == 2
    assert world.host.inner.images == {"https://example.invalid/debian.img"}
    # the hosts share one dummy here: the first fetches, the second finds it already there
    again = await download_os_images(world.deps, 1)
    assert again == DownloadReport(present=(1, second))


async def test_one_host_when_asked(world: World) -> None:
    _, disabled = await _more_hosts(world)
    report = await download_os_images(world.deps, 1, host_id=disabled)
    assert report == DownloadReport(fetched=(disabled,))
    assert world.host.calls["download_os_image"] == 1
    assert await download_os_images(world.deps, 1, host_id=999) == DownloadReport()


async def test_a_missing_image_does_nothing(world: World) -> None:
    assert await download_os_images(world.deps, 99) == DownloadReport()
    assert "download_os_image" not in world.host.calls


async def test_transient_failures_are_retried_then_the_job_fails(world: World) -> None:
    world.host.broken.add("download_os_image")
    with pytest.raises(ImageDownloadFailed) as caught:
        await download_os_images(world.deps, 1)
    assert caught.value.transient
    assert world.host.calls["download_os_image"] == world.deps.retry.attempts
    assert world.notifier.sent == []  # told only when it cannot succeed by retrying


class MismatchHost:
    """A host whose download always finds the wrong checksum."""

    async def download_os_image(self, image: OsImage) -> bool:
        raise VmHostError(f"OS image {image.url}: sha256 mismatch")


async def test_a_fatal_failure_is_told_to_the_admins_once(world: World) -> None:
    deps = attrs.evolve(world.deps, hosts=OneHost(MismatchHost()))  # type: ignore[arg-type]
    report = await download_os_images(deps, 1)
    assert report.failed == ((1, "OS image https://example.invalid/debian.img: sha256 mismatch"),)
    [notice] = world.notifier.sent
    assert notice.user_id is None and notice.title == "OS image 1 download failed"
    assert "host 1: " in notice.message and "mismatch" in notice.message


async def test_a_job_with_a_bad_field_is_refused_when_built() -> None:
    with pytest.raises(InvalidJob):
        DownloadOsImages(image_id="1")  # type: ignore[arg-type]
    with pytest.raises(InvalidJob):
        DownloadOsImages(image_id=1, host_id="x")  # type: ignore[arg-type]


async def test_the_job_without_an_image_id_fetches_every_enabled_image(world: World) -> None:
    async with world.deps.uow_factory() as uow:
        retired = await uow.images.get(2)  # the world's disabled Debian 11
        assert retired is not None and not retired.enabled
        await uow.images.update(attrs.evolve(retired, url="https://example.invalid/old.img"))
        await uow.images.add(
            attrs.evolve(
                retired, id=0, version="13", enabled=True, url="https://example.invalid/ubuntu.img"
            )
        )
        await uow.commit()
    await world.queue.send(DownloadOsImages())
    assert await drain(world.queue, world.handlers) == 1
    assert world.host.inner.images == {
        "https://example.invalid/debian.img",
        "https://example.invalid/ubuntu.img",
    }
