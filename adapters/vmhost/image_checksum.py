"""OS image checksums: which SHA-2 an `OsImage.sha2` digest is, and checking a stream against it."""

from __future__ import annotations

import hashlib

from domain.model import OsImage
from ports.vmhost import VmHostError

_ALGORITHMS = {64: "sha256", 128: "sha512"}
_HEX = frozenset("0123456789abcdef")


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
