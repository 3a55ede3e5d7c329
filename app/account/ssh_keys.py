"""The caller's SSH public keys (api.md §6.2): list and add an OpenSSH `authorized_keys` line."""

from __future__ import annotations

import base64
import binascii
import warnings

from attrs import evolve
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from domain.errors import DomainError, InvalidInput
from domain.model import SshKey
from domain.text_rules import check_line, is_single_line
from ports.clock import Clock
from ports.storage import UnitOfWorkFactory

NAME_LIMIT = 100
#: the comment kept after the key (also the name when none is given): one line, bounded.
COMMENT_LIMIT = NAME_LIMIT
#: a 16384-bit RSA key is under 3 000 characters; anything much longer is not a public key.
KEY_DATA_LIMIT = 8192
INVALID_KEY = "Invalid SSH public key format"
#: keys one account may hold: `GET /api/v1/ssh-key` lists them all, unpaged
MAX_SSH_KEYS = 50
#: key types `ssh-keygen` makes.
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


class TooManySshKeys(DomainError):
    """The account already holds `MAX_SSH_KEYS` keys (422); nothing is stored."""


class InvalidSshKey(InvalidInput):
    """Not an OpenSSH public key line (400)."""


def parse_public_key(text: str) -> tuple[str, str, str]:
    """(type, canonical base64 blob, comment) of one `<type> <base64> [comment]` line.

    The key must load with `cryptography` (which also checks that the blob names the same
    type); the line must be single (an embedded newline would add a second key to the
    host's `authorized_keys`) and the comment at most COMMENT_LIMIT characters.
    """
    if len(text) > KEY_DATA_LIMIT:
        raise InvalidSshKey(INVALID_KEY)
    line = text.strip()
    if not is_single_line(line.replace("\t", " ")):
        raise InvalidSshKey(f"{INVALID_KEY}: one line only")
    parts = line.split(maxsplit=2)
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise InvalidSshKey(INVALID_KEY)
    kind, blob_b64 = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) == 3 else ""
    if len(comment) > COMMENT_LIMIT:
        raise InvalidSshKey(f"{INVALID_KEY}: the comment is longer than {COMMENT_LIMIT} characters")
    try:
        blob = base64.b64decode(blob_b64, validate=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DSA is deprecated in cryptography, still valid
            load_ssh_public_key(f"{kind} {base64.b64encode(blob).decode()}".encode())
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        raise InvalidSshKey(INVALID_KEY) from None
    return kind, base64.b64encode(blob).decode(), comment


async def list_ssh_keys(uow_factory: UnitOfWorkFactory, user_id: int) -> list[SshKey]:
    """The user's keys, ascending id."""
    async with uow_factory() as uow:
        return await uow.ssh_keys.list_by_user(user_id)


async def add_ssh_key_by_owner(
    uow_factory: UnitOfWorkFactory, clock: Clock, owner_key: bytes, name: str, key_data: str
) -> SshKey | None:
    """Store a key re-encoded as `<type> <base64>[ <comment>]` for the user with this Nostr
    public key (an empty name takes the comment); None, and nothing stored, when no user has
    the key. A bad key or name is refused before the key is looked up.

    The one way a key is added: the owner's row is locked as their keys are counted, in one
    statement and before anything else in the unit of work (`SshKeys.lock_owner`; no user
    look-up before, issue 10), so concurrent adds of one user count one after another and
    one more than `MAX_SSH_KEYS` is refused (`TooManySshKeys`, nothing stored).
    """
    key = _checked_key(name, key_data, clock)
    async with uow_factory() as uow:
        owner = await uow.ssh_keys.lock_owner(owner_key)
        if owner is None:
            return None
        user_id, held = owner
        _check_count(held)
        added = await uow.ssh_keys.add(evolve(key, user_id=user_id))
        await uow.commit()
    return added


def _check_count(held: int) -> None:
    """A key more is refused when the account holds `MAX_SSH_KEYS` already."""
    if held >= MAX_SSH_KEYS:
        raise TooManySshKeys(
            f"An account holds at most {MAX_SSH_KEYS} SSH keys; this one was not added"
        )


def _checked_key(name: str, key_data: str, clock: Clock) -> SshKey:
    """The key to store (owner not set yet): the line re-encoded, the name checked."""
    kind, blob, comment = parse_public_key(key_data)
    name = check_line(name.strip() or comment, "name", NAME_LIMIT)
    line = f"{kind} {blob}" + (f" {comment}" if comment else "")
    return SshKey(id=0, name=name, user_id=0, created=clock.now(), key_data=line)
