"""SecretBox port: encrypt/decrypt column values in LNVPS's `ENC:` format (schema.md §2)."""

from __future__ import annotations

from typing import Protocol


class SecretBox(Protocol):
    """Encrypts secrets at rest; values without the `ENC:` prefix read back as plain text."""

    def encrypt(self, plain: str) -> str:
        """The stored form of `plain` (encrypted when a key is configured)."""
        ...

    def decrypt(self, stored: str) -> str:
        """The plain text of a stored value; raises SecretBoxError when it cannot."""
        ...

    def is_encrypted(self, stored: str) -> bool:
        """True when `stored` carries the `ENC:` prefix."""
        ...


class SecretBoxError(Exception):
    """A stored secret cannot be decrypted (wrong key, corrupt value, no key configured)."""
