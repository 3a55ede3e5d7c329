"""OS image checksums: the SHA-2 an image must have (`sha2`, or its line in the `sha2_url` sums
file) and checking a stream against it."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

import aiohttp

from domain.model import OsImage
from ports.vmhost import VmHostError

_ALGORITHMS = {64: "sha256", 128: "sha512"}
_HEX = frozenset("0123456789abcdef")
#: `SHA256 (file) = hex` (BSD, Fedora's CHECKSUM files)
_BSD_LINE = re.compile(r"^SHA(?:256|512) \((?P<name>.+)\) = (?P<digest>[0-9a-fA-F]+)$")
#: `hex  file` or `hex *file` (GNU coreutils: Debian's SHA512SUMS, Ubuntu's SHA256SUMS)
_GNU_LINE = re.compile(r"^(?P<digest>[0-9a-fA-F]{64}|[0-9a-fA-F]{128}) [ *](?P<name>.+)$")
#: the largest sums file read (a mirror's listing is a few KiB)
_MAX_SUMS_BYTES = 1024 * 1024


def check_http_ok(what: str, status: int) -> None:
    """Refuse an answer other than 200; a 5xx or 429 is worth retrying."""
    if status != 200:
        raise VmHostError(f"{what}: HTTP {status}", transient=status >= 500 or status == 429)


def digest_algorithm(digest: str) -> str:
    """`sha256` or `sha512` by the hex digest's length; anything else is a fatal error."""
    algorithm = _ALGORITHMS.get(len(digest))
    if algorithm is None or not set(digest.lower()) <= _HEX:
        raise VmHostError(f"not a hex SHA-256 or SHA-512 digest: {digest!r}")
    return algorithm


def expected_digest(image: OsImage) -> tuple[str, str] | None:
    """(algorithm, lower-case hex digest) the image must match, None when it has no `sha2`."""
    if not image.sha2:
        return None
    digest = image.sha2.strip().lower()
    return digest_algorithm(digest), digest


def digest_from_sums(text: str, filename: str) -> str | None:
    """The digest a sums file lists for `filename` (path prefixes like `./` are ignored)."""
    for raw in text.splitlines():
        line = raw.strip()
        found = _GNU_LINE.match(line) or _BSD_LINE.match(line)
        if found is not None and found.group("name").strip().rsplit("/", 1)[-1] == filename:
            return found.group("digest").lower()
    return None


async def resolve_digest(image: OsImage) -> tuple[str, str] | None:
    """`expected_digest`, else the image file's line of the sums file at `sha2_url`.

    A sums file that cannot be fetched is a transient error; one that does not list the
    image's file is fatal. None when the image has neither.
    """
    known = expected_digest(image)
    if known is not None or not image.sha2_url:
        return known
    filename = urlsplit(image.url).path.rsplit("/", 1)[-1]
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(image.sha2_url) as resp,
        ):
            check_http_ok(f"checksums {image.sha2_url}", resp.status)
            body = await resp.content.read(_MAX_SUMS_BYTES)
    except aiohttp.ClientError as exc:
        raise VmHostError(f"checksums {image.sha2_url}: {exc!r}", transient=True) from exc
    except TimeoutError as exc:
        raise VmHostError(f"checksums {image.sha2_url}: timed out", transient=True) from exc
    digest = digest_from_sums(body.decode("utf-8", "replace"), filename)
    if digest is None:
        raise VmHostError(f"{image.sha2_url} lists no SHA-256/SHA-512 for {filename}")
    return digest_algorithm(digest), digest


class DigestCheck:
    """Hashes the bytes of a download as they pass and compares the result at the end."""

    def __init__(self, expected: tuple[str, str] | None) -> None:
        self._expected = expected
        self._hash = hashlib.new(expected[0]) if expected is not None else None

    def update(self, chunk: bytes) -> None:
        if self._hash is not None:
            self._hash.update(chunk)

    def verify(self, what: str) -> None:
        """Raise a fatal `VmHostError` when the bytes seen do not have the expected digest."""
        if self._hash is None or self._expected is None:
            return
        actual = self._hash.hexdigest()
        if actual != self._expected[1]:
            raise VmHostError(
                f"{what}: {self._expected[0]} mismatch (expected {self._expected[1]}, got {actual})"
            )
