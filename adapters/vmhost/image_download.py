"""Downloading an OS image to a local temporary file, its SHA-2 checked on the way."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from adapters.vmhost.image_checksum import DigestCheck, check_http_ok, resolve_digest
from domain.model import OsImage
from ports.vmhost import VmHostError

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024


async def download_image(image: OsImage, directory: str | None = None) -> Path:
    """Stream `image.url` into a new temporary file and return its path.

    The digest is `image.sha2`, else the file's line in the `sha2_url` sums file. A checksum
    mismatch or an HTTP error deletes the file and raises: a mismatch is fatal, a network
    failure or 5xx transient. The caller deletes the returned file when done.
    """
    expected = await resolve_digest(image)
    check = DigestCheck(expected)
    if expected is None:
        log.warning("OS image %s has no sha2: downloaded without a checksum", image.id)
    fd, name = tempfile.mkstemp(prefix="lnvps-image-", dir=directory)
    path = Path(name)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    try:
        with os.fdopen(fd, "wb") as out:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(image.url) as resp,
            ):
                check_http_ok(f"downloading {image.url}", resp.status)
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    check.update(chunk)
                    out.write(chunk)
        check.verify(f"OS image {image.url}")
    except aiohttp.ClientError as exc:
        _remove(path)
        raise VmHostError(f"downloading {image.url}: {exc!r}", transient=True) from exc
    except BaseException:
        _remove(path)
        raise
    return path


def _remove(path: Path) -> None:
    """Delete a partial download (a local unlink: quick enough to do inline)."""
    path.unlink(missing_ok=True)


def file_chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes in chunks (for a libvirt upload stream)."""
    with path.open("rb") as src:
        while chunk := src.read(_CHUNK):
            yield chunk
