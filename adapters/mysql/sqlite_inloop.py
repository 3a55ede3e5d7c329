"""SQLite for the async engine: reads run in the event loop, writes on a thread, one writer.

SQLAlchemy's aiosqlite dialect drives whatever `async_creator` returns through the aiosqlite
API; this module provides that API over a plain `sqlite3` connection. Reads (`SELECT`,
`PRAGMA`) complete at once in the loop: no thread hop and no loop wake-up per call, which
measured 2-3x less CPU than aiosqlite (bench/README.md); under WAL they never wait for a lock.
Writing statements and the commit or rollback of a writing transaction go to a thread, as
aiosqlite does, because they may wait (another process's lock, a trigger, a checkpoint) and
must not stop the loop meanwhile. (Committing in the loop under WAL was tried: it saves a
thread hop, but the automatic checkpoint after a commit, page copies and an fsync, would then
run in the loop; kept on a thread.)

Writers of one process never wait inside SQLite for each other: the first writing statement
of a transaction takes a per-engine `asyncio.Lock` (one writer), held until commit, rollback
or close, and waits for it asynchronously, as long as the busy timeout at most.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

#: statements that never take SQLite's write lock (WAL: readers do not block the writer)
_READ_PREFIXES = ("SELECT", "PRAGMA")


class WriterLockTimeout(sqlite3.OperationalError):
    """Another transaction of this process held the write lock for longer than the timeout."""


class _Writer:
    """The one-writer lock of one database file, shared by the connections of one engine."""

    def __init__(self, timeout: float) -> None:
        self.lock = asyncio.Lock()
        self.timeout = timeout


class InLoopCursor:
    """The aiosqlite cursor API over a `sqlite3.Cursor`; every coroutine finishes at once."""

    def __init__(self, owner: InLoopConnection) -> None:
        self._owner = owner
        self._cursor = owner._conn.cursor()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InLoopCursor:
        args = () if parameters is None else parameters
        if await self._owner.before(sql):
            await asyncio.to_thread(self._cursor.execute, sql, args)
        else:
            self._cursor.execute(sql, args)
        return self

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> InLoopCursor:
        if await self._owner.before(sql):
            await asyncio.to_thread(self._cursor.executemany, sql, rows)
        else:
            self._cursor.executemany(sql, rows)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def __aenter__(self) -> InLoopCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()


class InLoopConnection:
    """The aiosqlite connection API over a `sqlite3.Connection` (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, writer: _Writer) -> None:
        self._conn = conn
        self._writer = writer
        self._writing = False

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @property
    def _connection(self) -> sqlite3.Connection | None:
        """What SQLAlchemy checks before commit/rollback (aiosqlite's "still open")."""
        return self._conn

    def cursor(self) -> InLoopCursor:
        return InLoopCursor(self)

    async def before(self, sql: str) -> bool:
        """True for a writing statement (run it on a thread), after taking the one-writer lock
        if this transaction does not hold it yet; False for a read (run it here)."""
        if sql.lstrip()[:6].upper() in _READ_PREFIXES:
            return False
        if self._writing:
            return True
        try:
            await asyncio.wait_for(self._writer.lock.acquire(), self._writer.timeout)
        except TimeoutError:
            raise WriterLockTimeout("database is locked") from None
        self._writing = True
        return True

    def _release(self) -> None:
        if self._writing:
            self._writing = False
            self._writer.lock.release()

    async def commit(self) -> None:
        await self._end(self._conn.commit)

    async def rollback(self) -> None:
        await self._end(self._conn.rollback)

    async def _end(self, finish: Callable[[], None]) -> None:
        """Commit or roll back, then let the next writer in."""
        try:
            if self._writing:  # may wait for another process or checkpoint: not in the loop
                await asyncio.to_thread(finish)
            else:
                finish()
        finally:
            self._release()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Forced close (SQLAlchemy's terminate)."""
        try:
            self._conn.close()
        finally:
            self._release()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)


def in_loop_creator(*args: Any, **kwargs: Any) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine`: `sqlite3.connect(*args, **kwargs)`
    connections sharing one writer lock, waited for as long as the busy `timeout`."""
    writer = _Writer(float(kwargs.get("timeout", 5.0)))
    kwargs["check_same_thread"] = False

    async def connect() -> InLoopConnection:
        return InLoopConnection(sqlite3.connect(*args, **kwargs), writer)

    return connect
