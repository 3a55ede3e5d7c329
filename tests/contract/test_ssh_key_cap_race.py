"""The SSH-key cap under concurrent adds, on memory, SQLite and MariaDB."""

from __future__ import annotations

import asyncio
from typing import Any

from app.account.ssh_keys import MAX_SSH_KEYS, TooManySshKeys, add_ssh_key_by_owner
from domain.model import SshKey
from tests.contract.lock_waits import Gate, gated
from tests.contract.storage_backends import Backend, at, backend, database
from tests.http.vm_helpers import ssh_public_key

__all__ = ["backend", "database"]

RACERS = 6
OWNER = b"\x07" * 32


async def test_concurrent_adds_at_one_below_the_cap_store_exactly_one(backend: Backend) -> None:
    """Before, each add counted after its own INSERT (a snapshot with only its own key beside
    the committed ones), so on MariaDB every racer passed the cap."""
    factory = backend.factory
    async with factory() as uow:
        user = await uow.users.get_or_create_by_pubkey(OWNER, at(1))
        for n in range(MAX_SSH_KEYS - 1):
            await uow.ssh_keys.add(
                SshKey(
                    id=0, name=f"k{n}", user_id=user.id, created=at(1), key_data=ssh_public_key(n)
                )
            )
        await uow.commit()
    gate = Gate(RACERS, factory)

    class Clock:
        def now(self) -> Any:
            return at(2)

    async def add(n: int) -> bool:
        try:
            key = ssh_public_key(100 + n)
            await add_ssh_key_by_owner(
                gated(factory, gate, "ssh_keys"), Clock(), OWNER, f"r{n}", key
            )
        except TooManySshKeys:
            return False
        return True

    passed = await asyncio.gather(*(add(n) for n in range(RACERS)))

    assert sorted(passed) == [False] * (RACERS - 1) + [True]
    async with factory() as uow:
        assert len(await uow.ssh_keys.list_by_user(user.id)) == MAX_SSH_KEYS
