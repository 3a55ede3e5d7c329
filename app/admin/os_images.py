"""Admin OS images (api.md §9.10): the images VMs are installed from, and download requests."""

from __future__ import annotations

import attrs

from app.admin.catalogue_common import (
    Duplicate,
    Fields,
    InUse,
    committed,
    evolve,
    info_of,
    not_found,
    trimmed,
)
from app.billing.errors import ImageNotFound
from domain.errors import InvalidInput
from domain.model import OsImage
from ports.jobs import DownloadOsImages
from ports.queue import WorkQueue
from ports.storage import UnitOfWork, UnitOfWorkFactory


@attrs.frozen
class ImageInfo:
    image: OsImage
    active_vm_count: int


async def _infos(uow: UnitOfWork, images: list[OsImage]) -> list[ImageInfo]:
    live: dict[int, int] = {}
    for vm in await uow.vms.list_active():
        live[vm.image_id] = live.get(vm.image_id, 0) + 1
    return [ImageInfo(i, live.get(i.id, 0)) for i in images]


async def list_images(uow_factory: UnitOfWorkFactory) -> list[ImageInfo]:
    async with uow_factory() as uow:
        return await _infos(uow, await uow.images.list_all())


async def _image(uow: UnitOfWork, image_id: int) -> OsImage:
    image = await uow.images.get(image_id)
    if image is None:
        raise ImageNotFound("VM OS image not found")
    return image


async def get_image(uow_factory: UnitOfWorkFactory, image_id: int) -> ImageInfo:
    return await info_of(uow_factory, _image, image_id, _infos)


def _changes(fields: Fields) -> dict[str, object]:
    """Text trimmed; `url`/`sha2_url` must be http(s); `sha2` a hex SHA-256 or SHA-512.

    A changed `url` or `sha2_url` without a `sha2` clears the stored checksum: it belonged to
    the old file. Without `sha2`, a download reads the file's checksum from `sha2_url`.
    """
    changes = dict(fields)
    for name in ("flavour", "version", "url"):
        if name in changes:
            changes[name] = trimmed(changes[name] or "", f"{name} cannot be empty")
    for name in ("default_username", "sha2", "sha2_url"):
        if name in changes:
            changes[name] = (changes[name] or "").strip() or None
    for name in ("url", "sha2_url"):
        value = changes.get(name)
        if isinstance(value, str) and not value.lower().startswith(("https://", "http://")):
            raise InvalidInput(f"{name} must be an http(s) URL")
    sha2 = changes.get("sha2")
    if isinstance(sha2, str):
        if len(sha2) not in (64, 128) or any(c not in "0123456789abcdefABCDEF" for c in sha2):
            raise InvalidInput("sha2 must be a hex SHA-256 or SHA-512 digest")
        changes["sha2"] = sha2.lower()
    if ("url" in changes or "sha2_url" in changes) and "sha2" not in changes:
        changes["sha2"] = None
    return changes


async def _check_unique(uow: UnitOfWork, image: OsImage) -> None:
    for other in await uow.images.list_all():
        if other.id != image.id and (other.distribution, other.flavour, other.version) == (
            image.distribution,
            image.flavour,
            image.version,
        ):
            raise Duplicate("An image with this distribution, flavour and version exists")


async def create_image(uow_factory: UnitOfWorkFactory, fields: Fields) -> ImageInfo:
    draft = evolve(
        OsImage(
            id=0,
            distribution=fields["distribution"],
            flavour="",
            version="",
            enabled=True,
            release_date=fields["release_date"],
            url="",
        ),
        _changes(fields),
    )
    async with uow_factory() as uow:
        await _check_unique(uow, draft)
        image = await uow.images.add(draft)
        await uow.commit()
    return ImageInfo(image, 0)


async def update_image(uow_factory: UnitOfWorkFactory, image_id: int, fields: Fields) -> ImageInfo:
    changes = _changes(fields)
    async with uow_factory() as uow:
        updated = evolve(await _image(uow, image_id), changes)
        await _check_unique(uow, updated)
        await uow.images.update(updated)
        return await committed(uow, updated, _infos)


async def delete_image(uow_factory: UnitOfWorkFactory, image_id: int) -> None:
    """Refused while VMs (deleted ones too: their rows point at it) use the image."""
    async with uow_factory() as uow:
        await _image(uow, image_id)
        used = await uow.vms.count_using(image_id=image_id)
        if used:
            raise InUse(f"Cannot delete VM OS image: {used} VMs are using this image")
        await uow.images.remove(image_id)
        await uow.commit()


async def request_download(
    uow_factory: UnitOfWorkFactory, queue: WorkQueue, image_id: int, host_id: int | None = None
) -> str:
    """Enqueue `DownloadOsImages` for the image (onto `host_id`, else every enabled host).

    The worker (app/worker/os_images.py) fetches the image into each host's image storage,
    checksum verified; images a host already has are left alone. Returns the job id.
    """
    async with uow_factory() as uow:
        await _image(uow, image_id)
        if host_id is not None and await uow.hosts.get(host_id) is None:
            raise not_found("Host")
    return await queue.send(DownloadOsImages(image_id=image_id, host_id=host_id))
