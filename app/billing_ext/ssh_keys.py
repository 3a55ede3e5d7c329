"""The caller's SSH public keys (api.md §6.2): list and add an OpenSSH `authorized_keys` line."""

from __future__ import annotations

import base64
import binascii
import struct

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from domain.errors import InvalidInput
from domain.model import SshKey
from ports.clock import Clock
from ports.storage import UnitOfWorkFactory

NAME_LIMIT = 100
INVALID_KEY = "Invalid SSH public key format"
#: key types `ssh-keygen` makes; the FIDO (`sk-`) ones are checked for form only.
KEY_TYPES = frozenset(
    {
        "ssh-rsa",
        "ssh-dss",
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)


class InvalidSshKey(InvalidInput):
    """Not an OpenSSH public key line (400)."""


def parse_public_key(text: str) -> tuple[str, str, str]:
    """(type, base64 blob, comment) of `<type> <base64> [comment]`; `InvalidSshKey` otherwise.

    The blob must decode and name the same type; non-FIDO keys must also load as keys.
    """
    parts = text.strip().split(maxsplit=2)
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise InvalidSshKey(INVALID_KEY)
    kind, blob_b64 = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) == 3 else ""
    try:
        blob = base64.b64decode(blob_b64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSshKey(INVALID_KEY) from None
    if len(blob) < 4:
        raise InvalidSshKey(INVALID_KEY)
    (length,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + length] != kind.encode():
        raise InvalidSshKey(INVALID_KEY)
    if not kind.startswith("sk-"):
        try:
            load_ssh_public_key(f"{kind} {blob_b64}".encode())
        except (ValueError, UnsupportedAlgorithm):
            raise InvalidSshKey(INVALID_KEY) from None
    return kind, blob_b64, comment


async def list_ssh_keys(uow_factory: UnitOfWorkFactory, user_id: int) -> list[SshKey]:
    """The user's keys, ascending id."""
    async with uow_factory() as uow:
        return await uow.ssh_keys.list_by_user(user_id)


async def add_ssh_key(
    uow_factory: UnitOfWorkFactory, clock: Clock, user_id: int, name: str, key_data: str
) -> SshKey:
    """Store a key re-encoded as `<type> <base64>[ <comment>]`; an empty name takes the comment."""
    kind, blob, comment = parse_public_key(key_data)
    name = name.strip() or comment
    if len(name) > NAME_LIMIT:
        raise InvalidInput(f"name is longer than {NAME_LIMIT} characters")
    line = f"{kind} {blob}" + (f" {comment}" if comment else "")
    async with uow_factory() as uow:
        key = await uow.ssh_keys.add(
            SshKey(id=0, name=name, user_id=user_id, created=clock.now(), key_data=line)
        )
        await uow.commit()
    return key
