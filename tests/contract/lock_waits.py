"""How many units of work wait for a lock another holds, seen from the race tests on each backend.

A race test holds one side at its riskiest point until the others are either there too or
held back by the lock that serialises them, instead of sleeping and hoping they got there:
memory's units of work wait for the database's one lock as they begin, SQLite's (a file, on
the engine's sync twin) for the engine's one-writer lock as they begin writing, MariaDB's in
InnoDB for a row lock.

On MariaDB a waiter is a session of this database running a locking read (`FOR UPDATE`,
`LOCK IN SHARE MODE`) or asking for a named lock (`SELECT GET_LOCK`, as the legacy backfill
does; given an engine rather than a factory, its database's sessions are counted): while
the test holds the lock such a statement cannot end, and one that is not held back ends
within a millisecond. `information_schema.innodb_trx` would say
`LOCK WAIT` exactly, but it is a cache InnoDB refreshes only after 100 ms without a reader:
polled more often it never changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.memory.storage import MemoryUnitOfWorkFactory
from adapters.mysql.engine import loop_engine_of
from adapters.mysql.uow import SqlUnitOfWorkFactory
from ports.storage import UnitOfWorkFactory

#: a lock wait not seen by then is a test that cannot race as written: it fails, loudly
DEADLINE_S = 30.0

_LOCK_WAITS = text(
    "SELECT COUNT(*) FROM information_schema.processlist"
    " WHERE db = DATABASE() AND id <> CONNECTION_ID() AND command = 'Query'"
    " AND (info LIKE '%FOR UPDATE%' OR info LIKE '%LOCK IN SHARE MODE%'"
    " OR info LIKE 'SELECT GET_LOCK%')"
)


def _lock_waiters(lock: asyncio.Lock) -> int:
    return len(lock._waiters or ())


async def lock_waits(storage: UnitOfWorkFactory | AsyncEngine) -> int:
    """Units of work of `storage`'s database (a factory's; a MariaDB engine's sessions)
    waiting for a lock right now."""
    if isinstance(storage, AsyncEngine):
        assert storage.dialect.name == "mysql", storage.dialect.name
        engine = storage
    elif isinstance(storage, MemoryUnitOfWorkFactory):
        return _lock_waiters(storage.db.lock)
    else:
        assert isinstance(storage, SqlUnitOfWorkFactory), storage
        engine = storage.engine
    if engine.dialect.name == "sqlite":
        twin = loop_engine_of(engine)
        assert twin is not None, "a SQLite file on the in-loop driver"
        return _lock_waiters(twin.writer.lock)
    async with engine.connect() as conn:
        return int((await conn.execute(_LOCK_WAITS)).scalar_one())


async def until(
    what: str, reached: Callable[[int], bool], storage: UnitOfWorkFactory | AsyncEngine
) -> None:
    """Return once `reached(lock_waits(storage))`; polled, bounded by DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not reached(await lock_waits(storage)):
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
