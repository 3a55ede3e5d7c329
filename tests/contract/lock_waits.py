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
