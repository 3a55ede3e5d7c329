"""SQLite for the async engine: statements run in the event loop, lock waits and checkpoints do not.

SQLAlchemy's aiosqlite dialect drives whatever `async_creator` returns through the aiosqlite
API; this module provides that API over a plain `sqlite3` connection (used by migrations, the
legacy back-fill and in-memory databases; the units of work on a file run on `sqlite_loop`'s
sync twin, which shares this module's `Writer`). Every statement and
every commit runs where it is awaited: no thread hop and no loop wake-up per call, which
measured 2-3x less CPU than aiosqlite for reads and ~25 % less per write request than writes
on a thread (bench/README.md). What could make a statement wait is kept out of the loop:

* Lock waits: connections have no busy timeout of their own (SQLite answers SQLITE_BUSY at
  once); a statement or commit refused that way is retried after an `asyncio.sleep`, with a
  growing pause, for as long as the configured busy timeout. Writers of one process never
  even get there: the first writing statement of a transaction takes a per-engine
  `asyncio.Lock` (one writer), held until commit, rollback or close.
* Checkpoints: the connections' automatic checkpoint is off (it would copy pages and fsync
  inside a commit); every CHECKPOINT_EVERY commits that wrote, a passive checkpoint runs on
  a thread over a connection of its own. Under WAL with `synchronous=NORMAL` a commit itself
  only appends to the WAL file (no fsync).

What still runs in the loop for as long as it takes is SQLite's own work on a statement: a
huge read or write holds the loop meanwhile (our statements are narrow). Two cases go back
to a thread per statement and commit, as aiosqlite does: a database with triggers (one can
make an INSERT arbitrarily long) and a journal other than WAL or memory (its commit fsyncs).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

log = logging.getLogger(__name__)

#: statements that never take SQLite's write lock (WAL: readers do not block the writer)
_READ_PREFIXES = ("SELECT", "PRAGMA")
#: SQLITE_BUSY and SQLITE_BUSY_RECOVERY: the lock or the WAL index is busy, try again later.
#: (SQLITE_BUSY_SNAPSHOT is not among them: the transaction read an old snapshot and must be
#: restarted, which a retry of the statement cannot do.)
_RETRYABLE_BUSY = frozenset({5, 261})
#: the first pause after SQLITE_BUSY and the longest one (seconds)
_FIRST_PAUSE = 0.001
_LONGEST_PAUSE = 0.05
#: commits that wrote between two passive checkpoints (SQLite's own default is every 1 000
#: WAL pages; a small write request appends a handful of pages)
CHECKPOINT_EVERY = 200

#: journal modes in which a commit neither fsyncs nor checkpoints (with the automatic one off)
_IN_LOOP_JOURNALS = frozenset({"wal", "memory"})
_ANY_TRIGGER = "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'trigger')"

T = TypeVar("T")


class WriterLockTimeout(sqlite3.OperationalError):
    """Another transaction of this process held the write lock for longer than the timeout."""


def _checkpoint_passive(conn: sqlite3.Connection) -> None:
    """PASSIVE: copies what no reader still needs, never waits for a lock."""
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _checkpoint_last_pass(conn: sqlite3.Connection) -> None:
    try:
        _checkpoint_passive(conn)
    finally:
        conn.close()


class Writer:
    """What the connections of one engine share: the one-writer lock, the busy timeout, and
    the checkpoint that runs on a thread every CHECKPOINT_EVERY writing commits."""

    def __init__(
        self, timeout: float, checkpoint_connect: Callable[[], sqlite3.Connection] | None
    ) -> None:
        self.lock = asyncio.Lock()
        self.timeout = timeout
        self._checkpoint_connect = checkpoint_connect
        self._commits = 0
        self._checkpointing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._schema_version: int | None = None
        self._has_triggers = False

    def committed(self) -> None:
        """Count a writing commit; start a checkpoint when one is due."""
        self._commits += 1
        if self._checkpoint_connect is None or self._checkpointing:
            return
        if self._commits < CHECKPOINT_EVERY:
            return
        self._commits = 0
        self._checkpointing = True
        task = asyncio.get_running_loop().create_task(self._checkpoint_between_writes())
        self._tasks.add(task)
        task.add_done_callback(self._checkpoint_done)

    async def _checkpoint_between_writes(self) -> None:
        """The checkpoint on a thread, in two passes: the first while writers go on (it
        copies nearly all of the WAL), the second holding the one-writer lock (it copies the
        few pages committed meanwhile). A commit in the middle of the last pass would leave
        the WAL's end past what was copied, and SQLite only starts the WAL file over when a
        writer finds it wholly copied (else it grows under steady writes); holding the lock
        for the first pass too made every writer wait for the whole copy and its fsync."""
        # each pass is one call on a thread, and a pass once started runs to its end even if
        # this task is cancelled (a cancel only drops a pass not started yet): the connection
        # is closed by the last pass, or here before that pass was handed it, never while a
        # pass runs; one left behind by a cancel (only at shutdown) is closed when collected
        conn = await asyncio.to_thread(self._checkpoint_first_pass)
        handed_over = False
        try:
            async with self.lock:
                handed_over = True
                await asyncio.to_thread(_checkpoint_last_pass, conn)
        finally:
            if not handed_over:
                conn.close()

    def _checkpoint_first_pass(self) -> sqlite3.Connection:
        assert self._checkpoint_connect is not None
        conn = self._checkpoint_connect()
        try:
            _checkpoint_passive(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _checkpoint_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._checkpointing = False
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.warning("SQLite checkpoint failed: %s", error)

    def writes_in_loop(self, conn: sqlite3.Connection) -> bool:
        """Whether a write transaction starting on `conn` may run in the loop: under WAL (or
        in memory) and while the database has no trigger. A trigger can make one INSERT as
        long as it likes (tests/e2e stalls one on purpose) and would hold the whole process;
        our schema has none, so a write costs what its own rows cost. Asked once per write
        transaction: two PRAGMAs, and the trigger list again only when the schema changed
        (`journal_in_loop`, then `without_triggers`).
        If SQLite is busy answering (a WAL index being recovered), the answer is no: the
        thread path waits for it like any other statement."""
        return self.journal_in_loop(conn) and self.without_triggers(conn)

    def journal_in_loop(self, conn: sqlite3.Connection) -> bool:
        """`conn`'s journal is one whose commit neither fsyncs nor checkpoints (WAL, memory);
        False if SQLite answers busy. Once a connection has used the WAL, no other connection
        can take the database out of WAL while it stays open (SQLite answers "database is
        locked"): only a `PRAGMA journal_mode` of its own can (`sqlite_loop` asks once per
        connection, again after such a PRAGMA)."""
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        except sqlite3.OperationalError as err:
            if not is_retryable_busy(err):
                raise
            return False
        return mode in _IN_LOOP_JOURNALS

    def without_triggers(self, conn: sqlite3.Connection) -> bool:
        """The database has no trigger (as of `conn`'s snapshot: inside a write transaction,
        the one it writes on); False if SQLite answers busy. One PRAGMA (the schema version,
        which another process's `CREATE TRIGGER` changes), and the trigger list again only
        when it changed."""
        try:
            version = conn.execute("PRAGMA schema_version").fetchone()[0]
            if version != self._schema_version:
                found = conn.execute(_ANY_TRIGGER).fetchone()[0]
                self._schema_version, self._has_triggers = version, bool(found)
        except sqlite3.OperationalError as err:
            if not is_retryable_busy(err):
                raise
            return False
        return not self._has_triggers

    async def patiently(self, call: Callable[[], T], *, on_thread: bool = False) -> T:
        """`call()` in the loop (on a thread with `on_thread`); while SQLite answers busy,
        again after a pause (the loop runs meanwhile), up to the busy timeout, after which
        the last refusal is raised."""
        deadline: float | None = None
        pause = _FIRST_PAUSE
        while True:
            try:
                return (await _to_thread_to_its_end(call)) if on_thread else call()
            except Exception as err:
                if not is_retryable_busy(err):
                    raise
                now = time.monotonic()
                deadline = now + self.timeout if deadline is None else deadline
                if now >= deadline:
                    raise
            await asyncio.sleep(min(pause, deadline - now))
            pause = min(pause * 2, _LONGEST_PAUSE)


async def _to_thread_to_its_end(call: Callable[[], T]) -> T:
    """`call()` on a thread; a cancel waits for it to end before it goes on, so the caller
    never closes or rolls back the connection while a statement still runs on it (a write
    finishing after that rollback would open a transaction on a pooled connection)."""
    running = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait([running])
        raise


def is_retryable_busy(err: BaseException) -> bool:
    """SQLite answered busy (`_RETRYABLE_BUSY`): the error itself, or the driver error that
    SQLAlchemy wrapped (`orig`) or that an engine hook translated (`__cause__`)."""
    for candidate in (err, getattr(err, "orig", None), err.__cause__):
        if isinstance(candidate, sqlite3.OperationalError):
            return getattr(candidate, "sqlite_errorcode", None) in _RETRYABLE_BUSY
    return False


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
        await self._owner.run(sql, lambda: self._cursor.execute(sql, args))
        return self

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> InLoopCursor:
        batch = list(rows)  # a retry must see the same rows again
        await self._owner.run(sql, lambda: self._cursor.executemany(sql, batch))
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

    def __init__(self, conn: sqlite3.Connection, writer: Writer) -> None:
        self._conn = conn
        self._writer = writer
        self._writing = False
        self._off_loop = False  # this write transaction runs on a thread (`writes_in_loop`)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @property
    def _connection(self) -> sqlite3.Connection | None:
        """What SQLAlchemy checks before commit/rollback (aiosqlite's "still open")."""
        return self._conn

    def cursor(self) -> InLoopCursor:
        return InLoopCursor(self)

    async def run(self, sql: str, call: Callable[[], object]) -> None:
        """Run `call` (which executes `sql`) once this transaction may: a writing statement
        first takes the one-writer lock (waited for in the loop, as long as the busy timeout
        at most), then runs in the loop or, where `writes_in_loop` says no, on a thread."""
        if not self._writing and sql.lstrip()[:6].upper() not in _READ_PREFIXES:
            try:  # `timeout`, not `wait_for`: no task and loop turn per write (~16 µs)
                async with asyncio.timeout(self._writer.timeout):
                    await self._writer.lock.acquire()
            except TimeoutError:
                raise WriterLockTimeout("database is locked") from None
            self._writing = True
            try:
                self._off_loop = not self._writer.writes_in_loop(self._conn)
            except BaseException:
                self._release()
                raise
        await self._writer.patiently(call, on_thread=self._writing and self._off_loop)

    def _release(self) -> None:
        if self._writing:
            self._writing = self._off_loop = False
            self._writer.lock.release()

    async def commit(self) -> None:
        wrote = self._writing
        await self._end(self._conn.commit)
        if wrote:
            self._writer.committed()

    async def rollback(self) -> None:
        await self._end(self._conn.rollback)

    async def _end(self, finish: Callable[[], None]) -> None:
        """Commit or roll back (waiting out a busy lock), then let the next writer in."""
        try:
            await self._writer.patiently(finish, on_thread=self._writing and self._off_loop)
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


class SqliteConnector:
    """Opens the `sqlite3` connections of one database file for one process: no busy timeout
    of their own (a lock wait is retried in the loop, `Writer.patiently`), usable from any
    thread, the automatic checkpoint off where `checkpoints` (a file database: `Writer`
    checkpoints on a thread instead; an in-memory database has no WAL). Its `writer` is shared
    by every engine opened through it (the async driver below and `sqlite_loop`'s units of
    work), so the whole process has one writer at a time and one checkpoint schedule."""

    def __init__(self, *args: Any, checkpoints: bool = True, **kwargs: Any) -> None:
        timeout = float(kwargs.pop("timeout", 5.0))
        kwargs["check_same_thread"] = False
        kwargs["timeout"] = 0  # SQLITE_BUSY at once: `Writer.patiently` waits, in the loop
        self._args, self._kwargs = args, kwargs
        self._checkpoints = checkpoints
        self.writer = Writer(timeout, self._plain if checkpoints else None)

    def _plain(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = sqlite3.connect(*self._args, **self._kwargs)
        return conn

    def connect(self) -> sqlite3.Connection:
        """A new connection, its automatic checkpoint off where `Writer` checkpoints."""
        conn = self._plain()
        if self._checkpoints:
            conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    async def async_connect(self) -> InLoopConnection:
        """The aiosqlite-style connection SQLAlchemy's async engine drives."""
        return InLoopConnection(self.connect(), self.writer)


def in_loop_creator(*args: Any, checkpoints: bool = True, **kwargs: Any) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine`: `sqlite3.connect(*args, **kwargs)`
    connections sharing one writer lock, lock waits retried in the loop for as long as the
    busy `timeout` (`SqliteConnector`)."""
    return SqliteConnector(*args, checkpoints=checkpoints, **kwargs).async_connect
