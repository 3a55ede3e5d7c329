"""The SSH-key cap under concurrent adds, on memory, SQLite and MariaDB."""

from __future__ import annotations

import asyncio
from typing import Any

from app.account.ssh_keys import MAX_SSH_KEYS, TooManySshKeys, add_ssh_key_by_owner
from domain.model import SshKey
from ports.storage import UnitOfWorkFactory
from tests.contract.lock_waits import until
from tests.contract.storage_backends import Backend, at, backend, database
from tests.http.vm_helpers import ssh_public_key

__all__ = ["backend", "database"]

RACERS = 6
OWNER = b"\x07" * 32


class _Gate:
    """Holds each unit of work after its first SSH-key storage call until every racer has
    made its own or waits for the lock that serialises them (`lock_waits`): all adds then
    overlap at their riskiest point. Once that was seen the gate stays open (the racers a
    lock held back come one after another)."""

    def __init__(self, racers: int, factory: UnitOfWorkFactory) -> None:
        self.arrived = 0
        self.racers = racers
        self.factory = factory
        self.open = False

    async def wait(self) -> None:
        self.arrived += 1
        if not self.open:
            await until(
                "every racer past its first call or waiting for the lock",
                lambda waits: self.arrived + waits >= self.racers,
                self.factory,
            )
            self.open = True


class _GatedKeys:
    def __init__(self, inner: Any, gate: _Gate) -> None:
        self._inner, self._gate, self._first = inner, gate, True

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def gated(*args: Any, **kwargs: Any) -> Any:
            result = await method(*args, **kwargs)
            if self._first:
                self._first = False
                await self._gate.wait()
            return result

        return gated


def _gated(factory: UnitOfWorkFactory, gate: _Gate) -> UnitOfWorkFactory:
    class Gated:
        def __init__(self) -> None:
            self._uow = factory()
            self._keys: _GatedKeys | None = None

        async def __aenter__(self) -> Any:
            await self._uow.__aenter__()
            return self

        async def __aexit__(self, *exc: Any) -> Any:
            return await self._uow.__aexit__(*exc)

        @property
        def ssh_keys(self) -> Any:
            if self._keys is None:
                self._keys = _GatedKeys(self._uow.ssh_keys, gate)
            return self._keys

        def __getattr__(self, name: str) -> Any:
            return getattr(self._uow, name)

    return Gated


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
    gate = _Gate(RACERS, factory)

    class Clock:
        def now(self) -> Any:
            return at(2)

    async def add(n: int) -> bool:
        try:
            key = ssh_public_key(100 + n)
            await add_ssh_key_by_owner(_gated(factory, gate), Clock(), OWNER, f"r{n}", key)
        except TooManySshKeys:
            return False
        return True

    passed = await asyncio.gather(*(add(n) for n in range(RACERS)))

    assert sorted(passed) == [False] * (RACERS - 1) + [True]
    async with factory() as uow:
        assert len(await uow.ssh_keys.list_by_user(user.id)) == MAX_SSH_KEYS
