"""DownloadOsImages (§9.1): fetch an OS image into the storage of every enabled host (or one)."""

from __future__ import annotations

import logging
from functools import partial

import attrs

from app.worker.context import WorkerDeps
from ports.vmhost import VmHostError

log = logging.getLogger("lnvps.worker.images")


@attrs.frozen
class DownloadReport:
    """Host ids that fetched the image now, that had it already, and that failed (with why)."""

    fetched: tuple[int, ...] = ()
    present: tuple[int, ...] = ()
    failed: tuple[tuple[int, str], ...] = ()


class ImageDownloadFailed(VmHostError):
    """Some host could not fetch the image for a reason that may pass: the job is run again."""


async def download_os_images(
    deps: WorkerDeps, image_id: int, host_id: int | None = None
) -> DownloadReport:
    """Download the image onto each host, one after the other, retrying transient failures.

    A missing image or host is logged and ends the job (nothing to retry). When a host
    still fails transiently after the retries, `ImageDownloadFailed` is raised once every
    host was tried, so the queue delivers the job again: hosts that have the image by then
    skip it (the download is idempotent). Otherwise fatal failures (a checksum mismatch, a
    bad URL) are reported to the admins once and the job ends.
    """
    async with deps.uow_factory() as uow:
        image = await uow.images.get(image_id)
        if host_id is not None:
            one = await uow.hosts.get(host_id)
            hosts = [one] if one is not None else []
        else:
            hosts = [h for h in await uow.hosts.list_all() if h.enabled]
    if image is None or (host_id is not None and not hosts):
        log.warning("DownloadOsImages: image %s or host %s not found", image_id, host_id)
        return DownloadReport()
    fetched: list[int] = []
    present: list[int] = []
    failed: list[tuple[int, str]] = []
    retry_later = False
    for host in hosts:
        what = f"download of image {image_id} to host {host.id}"
        try:
            client = deps.hosts.for_host(host)
            if await deps.retry.call(what, partial(client.download_os_image, image)):
                fetched.append(host.id)
            else:
                present.append(host.id)
        except VmHostError as err:
            log.error("%s failed: %s", what, err.message)
            failed.append((host.id, err.message))
            retry_later = retry_later or err.transient
    report = DownloadReport(tuple(fetched), tuple(present), tuple(failed))
    log.info(
        "image %s: fetched on %s, present on %s, failed on %s",
        image_id,
        report.fetched,
        report.present,
        [h for h, _ in report.failed],
    )
    if failed and not retry_later:
        lines = "\n".join(f"host {h}: {why}" for h, why in failed)
        await deps.tell_admins(f"OS image {image_id} download failed", lines)
    if retry_later:
        raise ImageDownloadFailed(f"image {image_id}: a host failed transiently", transient=True)
    return report
