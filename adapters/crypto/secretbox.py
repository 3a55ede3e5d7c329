"""AES-256-GCM SecretBox compatible with LNVPS `ENC:` values, and its key file (D28)."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ports.secrets import SecretBoxError

PREFIX = "ENC:"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class KeyFileError(Exception):
    """The key file is missing (and not to be generated) or has the wrong length."""


def is_encrypted(stored: str) -> bool:
    """True when the stored value carries the `ENC:` prefix."""
    return stored.startswith(PREFIX)


def stored_length(plain_bytes: int) -> int:
    """Length of the stored text for an n-byte plaintext: `4 + 4*ceil((n+28)/3)`."""
    return len(PREFIX) + 4 * -(-(plain_bytes + NONCE_BYTES + TAG_BYTES) // 3)


class AesGcmSecretBox:
    """`"ENC:" + base64(nonce(12) || ciphertext || tag(16))`, random nonce, no associated data."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise KeyFileError(f"encryption key must be exactly {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def from_key_file(cls, path: str | Path, *, auto_generate: bool = False) -> AesGcmSecretBox:
        return cls(load_or_create_key(path, auto_generate=auto_generate))

    def encrypt(self, plain: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain.encode("utf-8"), None)
        return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, stored: str) -> str:
        if not is_encrypted(stored):
            return stored
        try:
            raw = base64.b64decode(stored[len(PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SecretBoxError(f"encrypted value is not valid base64: {exc}") from None
        if len(raw) < NONCE_BYTES:
            raise SecretBoxError("encrypted value is too short to hold a nonce")
        try:
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None)
        except InvalidTag:
            raise SecretBoxError(
                "cannot decrypt value: wrong encryption key or corrupted data"
            ) from None
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretBoxError("decrypted value is not valid UTF-8") from None

    def is_encrypted(self, stored: str) -> bool:
        return is_encrypted(stored)


def load_or_create_key(path: str | Path, *, auto_generate: bool = False) -> bytes:
    """Read the raw 32-byte key; with `auto_generate`, create a missing file (mode 0600).

    Creation is atomic (a private temporary file hard-linked into place), so two processes
    starting together agree on one key and nobody ever reads a half-written file.
    """
    key_path = Path(path)
    if not key_path.exists():
        if not auto_generate:
            raise KeyFileError(f"encryption key file {key_path} does not exist")
        _create_key_file(key_path)
    key = key_path.read_bytes()
    if len(key) != KEY_BYTES:
        raise KeyFileError(
            f"encryption key file {key_path} must hold exactly {KEY_BYTES} raw bytes, "
            f"found {len(key)}"
        )
    return key


def _create_key_file(key_path: Path) -> None:
    key_path.parent.mkdir(parents=True, exist_ok=True)
    temp = key_path.with_name(f".{key_path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, os.urandom(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.chmod(temp, 0o600)
        os.link(temp, key_path)
    except FileExistsError:
        pass  # another process created it first: use theirs
    finally:
        temp.unlink()
