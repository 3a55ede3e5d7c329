"""How many units of work wait for a lock another holds, seen from the race tests on each backend.

A race test holds one side at its riskiest point until the others are either there too or
held back by the lock that serialises them, instead of sleeping and hoping they got there:
memory's units of work wait for the database's one lock as they begin, SQLite's (a file, on
the engine's sync twin) for the engine's one-writer lock as they begin writing, MariaDB's in
InnoDB for a row lock.

On MariaDB a waiter is a session of this database running a locking read (`FOR UPDATE`,
`LOCK IN SHARE MODE`): while the test holds the lock such a read cannot end, and one that
is not held back ends within a millisecond. `information_schema.innodb_trx` would say
`LOCK WAIT` exactly, but it is a cache InnoDB refreshes only after 100 ms without a reader:
polled more often it never changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from adapters.memory.storage import MemoryUnitOfWorkFactory
from adapters.mysql.engine import loop_engine_of
from adapters.mysql.uow import SqlUnitOfWorkFactory
from ports.storage import UnitOfWorkFactory

#: a lock wait not seen by then is a test that cannot race as written: it fails, loudly
DEADLINE_S = 30.0

_LOCKING_READS = text(
    "SELECT COUNT(*) FROM information_schema.processlist"
    " WHERE db = DATABASE() AND id <> CONNECTION_ID() AND command = 'Query'"
    " AND (info LIKE '%FOR UPDATE%' OR info LIKE '%LOCK IN SHARE MODE%')"
)


def _lock_waiters(lock: asyncio.Lock) -> int:
    return len(lock._waiters or ())


async def lock_waits(factory: UnitOfWorkFactory) -> int:
    """Units of work of `factory`'s storage waiting for a lock right now."""
    if isinstance(factory, MemoryUnitOfWorkFactory):
        return _lock_waiters(factory.db.lock)
    assert isinstance(factory, SqlUnitOfWorkFactory), factory
    if factory.engine.dialect.name == "sqlite":
        twin = loop_engine_of(factory.engine)
        assert twin is not None, "a SQLite file on the in-loop driver"
        return _lock_waiters(twin.writer.lock)
    async with factory.engine.connect() as conn:
        return int((await conn.execute(_LOCKING_READS)).scalar_one())


async def until(what: str, reached: Callable[[int], bool], factory: UnitOfWorkFactory) -> None:
    """Return once `reached(lock_waits(factory))`; polled, bounded by DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not reached(await lock_waits(factory)):
        if time.monotonic() > deadline:
            raise AssertionError(f"no lock wait after {DEADLINE_S}s: {what}")
        await asyncio.sleep(0.002)


class Gate:
    """Holds each racer at its riskiest point until every racer is there too or waits for the
    lock that serialises them (`lock_waits`): all of them then overlap at that point. Once
    that was seen the gate stays open (the racers a lock held back come one after another)."""

    def __init__(self, racers: int, factory: UnitOfWorkFactory) -> None:
        self.arrived = 0
        self.racers = racers
        self.factory = factory
        self.open = False

    async def wait(self) -> None:
        self.arrived += 1
        if not self.open:
            await until(
                "every racer at the gate or waiting for the lock",
                lambda waits: self.arrived + waits >= self.racers,
                self.factory,
            )
            self.open = True


class _GatedRepo:
    """A repository whose first call of `method` (of any method when None) passes the gate
    once it returned."""

    def __init__(self, inner: Any, gate: Gate, method: str | None) -> None:
        self._inner, self._gate, self._method, self._first = inner, gate, method, True

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._inner, name)
        if self._method not in (None, name):
            return call

        async def gated(*args: Any, **kwargs: Any) -> Any:
            result = await call(*args, **kwargs)
            if self._first:
                self._first = False
                await self._gate.wait()
            return result

        return gated


def gated(
    factory: UnitOfWorkFactory, gate: Gate, repo: str, method: str | None = None
) -> UnitOfWorkFactory:
    """`factory`, each of its units of work passing `gate` after its first call of
    `repo.method` (say the subscription's lock: `"subscriptions", "get_for_update"`)."""

    class Gated:
        def __init__(self) -> None:
            self._uow = factory()
            self._repo: _GatedRepo | None = None

        async def __aenter__(self) -> Any:
            await self._uow.__aenter__()
            return self

        async def __aexit__(self, *exc: Any) -> Any:
            return await self._uow.__aexit__(*exc)

        def __getattr__(self, name: str) -> Any:
            if name != repo:
                return getattr(self._uow, name)
            if self._repo is None:
                self._repo = _GatedRepo(getattr(self._uow, name), gate, method)
            return self._repo

    return Gated
