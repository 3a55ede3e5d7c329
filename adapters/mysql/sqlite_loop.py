"""SQLite for units of work: SQLAlchemy's sync engine called from the event loop, no async layer.

A unit of work on a SQLite file runs its statements through a plain (sync) SQLAlchemy
`Connection` over `sqlite3`, called where it is awaited. SQLAlchemy's async engine reaches the
same `sqlite3` calls through a greenlet and an async driver adapter for every statement,
commit and pool checkout; on a request that stores a renewal invoice those layers cost about
0.8 of its 2.1 ms of CPU (issue 10, bench/README.md). What the async driver
(`sqlite_inloop`) does besides that is kept, with the same `Writer` (one per database file
and process, shared with the async engine of the same file):

* one writer at a time: the first writing statement of a transaction waits, in the loop, for
  the writer lock, held until commit, rollback or close;
* a lock held by another process (SQLITE_BUSY) is waited out in pauses, in the loop, up to the
  busy timeout; then the unit of work gets `StorageBusy`;
* a write transaction that might run long (a database with triggers, a journal other than
  WAL) runs its statements and commit on a thread;
* the checkpoint runs on a thread every `CHECKPOINT_EVERY` writing commits.

Every result is read to its end when its statement runs, as the async engine's cursors do:
a SELECT left half-read keeps its read snapshot open in `sqlite3`, and since the pool's
rollback on return does not end it, the next unit of work on that connection would read
that old snapshot.

The pool is sync: a checkout must never wait inside the loop, so checkouts are counted by an
`asyncio.Semaphore` as large as the pool and a unit of work waits for a free connection there.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager
from typing import Any, TypeVar, TypeVarTuple, overload

from sqlalchemy import Dialect, Engine, TextClause
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.engine.cursor import FullyBufferedCursorFetchStrategy
from sqlalchemy.sql import Executable
from sqlalchemy.sql.selectable import TextualSelect, TypedReturnsRows

from adapters.mysql.sqlite_inloop import Writer, WriterLockTimeout, is_retryable_busy
from ports.storage import StorageBusy

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
#: the pool record `info` key under which a connection whose journal is one a write runs in
#: the loop under (`Writer.journal_in_loop`) is kept: the `sqlite3` connection itself
_JOURNAL_IN_LOOP = "lnvps_sqlite_journal_in_loop"
#: a unit of work that finds every pooled connection taken waits this long for one (seconds),
#: as SQLAlchemy's own pool does, then gets `StorageBusy`
POOL_TIMEOUT_S = 30.0


def writes(statement: Executable) -> bool:
    """Whether `statement` may take SQLite's write lock: anything but a SELECT or a PRAGMA
    that only reads (no `=`). Textual SQL is judged by its text, also when typed as a
    select (`text(...).columns(...)` may well be an `INSERT … RETURNING`)."""
    if isinstance(statement, TextualSelect):
        statement = statement.element
    if isinstance(statement, TextClause):
        sql = statement.text.lstrip().upper()
        return not (sql.startswith("SELECT") or (sql.startswith("PRAGMA") and "=" not in sql))
    return not getattr(statement, "is_select", False)


def _is_pragma(statement: Executable) -> bool:
    """A textual PRAGMA: what may change the connection's journal mode."""
    if isinstance(statement, TextualSelect):
        statement = statement.element
    return isinstance(statement, TextClause) and statement.text.lstrip()[:6].upper() == "PRAGMA"


def _read_out(result: CursorResult[*Ts]) -> CursorResult[*Ts]:
    """`result` with every row read now, its driver statement done (so it holds no read
    snapshot); one SQLAlchemy buffered already (an `insertmanyvalues` RETURNING) is kept."""
    if result.returns_rows and not isinstance(
        result.cursor_strategy, FullyBufferedCursorFetchStrategy
    ):
        result.cursor_strategy = FullyBufferedCursorFetchStrategy(result.cursor)
    return result


class LoopEngine:
    """The sync engine of one SQLite file, its `Writer` and the count of free connections."""

    def __init__(
        self,
        sync_engine: Engine,
        writer: Writer,
        pool_size: int,
        pool_timeout: float = POOL_TIMEOUT_S,
    ) -> None:
        self.sync_engine = sync_engine
        self.writer = writer
        self._free = asyncio.Semaphore(pool_size)
        self._pool_timeout = pool_timeout

    def connect(self) -> _Checkout:
        """A pooled connection, once one is free (waited for in the loop): awaited, or
        entered with `async with` (closed on exit), as `AsyncEngine.connect()`."""
        return _Checkout(self)

    async def _checkout(self) -> LoopConnection:
        try:
            async with asyncio.timeout(self._pool_timeout):
                await self._free.acquire()
        except TimeoutError:
            raise StorageBusy() from None  # every connection held for the whole timeout
        # the pool's connection itself is taken at the first statement (`LoopConnection`)
        return LoopConnection(self.sync_engine, self.writer, self._free.release)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[LoopConnection]:
        """A connection whose transaction is committed when the block ends without error."""
        async with self.connect() as conn:
            yield conn
            await conn.commit()

    async def dispose(self) -> None:
        self.sync_engine.dispose()


class _Checkout:
    def __init__(self, engine: LoopEngine) -> None:
        self._engine = engine
        self._conn: LoopConnection | None = None

    def __await__(self) -> Generator[Any, None, LoopConnection]:
        return self._engine._checkout().__await__()

    async def __aenter__(self) -> LoopConnection:
        self._conn = await self._engine._checkout()
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            await self._conn.close()


class LoopConnection:
    """The part of SQLAlchemy's `AsyncConnection` a unit of work uses, over a sync one.

    Its place in the pool is counted from the start (`LoopEngine`), but the pooled connection
    is taken only when the first statement runs and, for a transaction that begins by
    writing, only once it holds the writer lock. A unit of work waiting for that lock so
    holds no connection, and the one it gets is the pool's last returned (LIFO): the one the
    writer before it committed on. SQLite empties a connection's page cache when another
    connection wrote since its last transaction; taken this way, reads and writes that run
    one after the other keep to one connection and find their pages cached (with 32
    concurrent renewals, ~27 connections were held waiting for the lock, and nearly every
    read ran on a connection some other one had written after, issue 10)."""

    def __init__(self, engine: Engine, writer: Writer, on_close: Callable[[], None]) -> None:
        self._engine = engine
        self._conn: Connection | None = None  # taken from the pool at the first statement
        self._closed = False
        self._writer = writer
        self._on_close = on_close
        self._writing = False
        self._off_loop = False  # this write transaction runs on a thread (`writes_in_loop`)
        self._lock_only = False  # begun by `begin_write`, no writing statement since

    @property
    def dialect(self) -> Dialect:
        self._check_open()
        return self._engine.dialect

    @property
    def sync_connection(self) -> Connection:
        return self._open()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("connection already closed")

    def _open(self) -> Connection:
        """The pooled connection, taken now if this is its first use."""
        conn = self._conn
        if conn is None:
            self._check_open()
            conn = self._conn = self._engine.connect()
        return conn

    def _driver(self) -> sqlite3.Connection:
        driver = self._open().connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        return driver

    @overload
    async def execute(
        self, statement: TypedReturnsRows[*Ts], parameters: Any = None
    ) -> CursorResult[*Ts]: ...

    @overload
    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[*tuple[Any, ...]]: ...

    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[*tuple[Any, ...]]:
        """Run `statement`; a writing one first takes the writer lock (module docstring)."""
        self._check_open()
        if (self._lock_only or not self._writing) and writes(statement):
            if not self._writing:
                await self._start_writing()
            self._lock_only = False
        conn = self._open()
        if _is_pragma(statement):  # its journal mode may change: asked again next time
            conn.connection.info.pop(_JOURNAL_IN_LOOP, None)
        # read to its end in the same call, on the thread too where the statement runs there
        return await self._patiently(lambda: _read_out(conn.execute(statement, parameters)))

    async def begin_write(self) -> None:
        """Start the write transaction now, before any statement: the writer lock, then SQLite's
        write lock (`BEGIN IMMEDIATE`), so what the transaction reads next is read under both,
        as a row lock would have it read on MariaDB. Nothing once the transaction writes.

        It spares the no-op `UPDATE` a locking read took on SQLite, which also dirtied a page
        that every commit then copied to the WAL. The `BEGIN` goes to the driver, as the one
        `sqlite3` sends itself before a first INSERT or UPDATE."""
        self._check_open()
        if self._writing:
            return
        await self._start_writing(begin=True)

    async def _start_writing(self, *, begin: bool = False) -> None:
        """The writer lock, then (on a first statement) the pooled connection (see the class),
        and where the write transaction runs (`Writer.writes_in_loop`); with `begin`, the
        driver's `BEGIN IMMEDIATE` too (`begin_write`).

        The journal mode is asked once per pooled connection (kept in its pool record's
        `info`, forgotten after a PRAGMA of its own: see `Writer.journal_in_loop`); the
        trigger check runs for every write transaction, and inside it where the `BEGIN` is
        ours (no read transaction of its own)."""
        try:  # `timeout`, not `wait_for`: no task and loop turn per write
            async with asyncio.timeout(self._writer.timeout):
                await self._writer.lock.acquire()
        except TimeoutError:
            raise StorageBusy() from WriterLockTimeout("database is locked")
        self._writing = True
        try:
            driver = self._driver()
            info = self._open().connection.info
            if info.get(_JOURNAL_IN_LOOP) is not driver:
                if not self._writer.journal_in_loop(driver):
                    self._off_loop = True
                    if begin:
                        await self._begin_immediate(driver)
                    return
                info[_JOURNAL_IN_LOOP] = driver
            if begin:  # under WAL the `BEGIN` waits for nothing (a busy answer is waited out)
                await self._begin_immediate(driver)
            self._off_loop = not self._writer.without_triggers(driver)
        except BaseException:
            self._release()
            raise

    async def _begin_immediate(self, driver: sqlite3.Connection) -> None:
        self._lock_only = True
        if not driver.in_transaction:
            await self._patiently(lambda: driver.execute("BEGIN IMMEDIATE").close())

    async def _patiently(self, call: Callable[[], T]) -> T:
        """`call()` with SQLite's busy answers waited out; past the busy timeout, `StorageBusy`
        (whether the driver's error comes as it is, wrapped by SQLAlchemy or translated)."""
        try:
            return await self._writer.patiently(call, on_thread=self._writing and self._off_loop)
        except StorageBusy:
            raise
        except Exception as err:
            if is_retryable_busy(err):
                raise StorageBusy() from err
            raise

    async def commit(self) -> None:
        """Commit on the driver (a busy answer is waited out: SQLAlchemy's own commit would
        end its transaction even when the driver's failed), then end SQLAlchemy's."""
        self._check_open()
        conn = self._conn
        if conn is None:
            return  # no statement ran: nothing to commit (and no writer lock is held)
        # a locking transaction that only read added nothing to the WAL: no checkpoint is owed
        wrote = self._writing and not self._lock_only
        try:
            await self._patiently(self._driver().commit)
            conn.commit()  # the driver has no transaction left: SQLAlchemy's ends, no I/O
        finally:
            self._release()
        if wrote:
            self._writer.committed()

    async def rollback(self) -> None:
        """Roll back on the driver first: a transaction `begin_write` opened there, with no
        statement since, is one SQLAlchemy does not know of and would leave open."""
        self._check_open()
        conn = self._conn
        if conn is None:
            return  # no statement ran: nothing to roll back
        try:
            await self._patiently(self._driver().rollback)
            conn.rollback()  # the driver has no transaction left: SQLAlchemy's ends, no I/O
        finally:
            self._release()

    async def close(self) -> None:
        """Back to the pool, rolled back if a transaction is open; the writer lock and the
        pool place are given back whatever happens."""
        if self._closed:
            return
        self._closed = True
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                conn.close()
        finally:
            self._release()
            self._on_close()

    def _release(self) -> None:
        if self._writing:
            self._writing = self._off_loop = self._lock_only = False
            self._writer.lock.release()

    async def __aenter__(self) -> LoopConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
