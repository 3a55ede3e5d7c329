"""Kill -9 test helpers: SIGKILL a process, read its database, stall one table's inserts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.sql import Executable

from adapters.mysql.engine import create_engine, url_is_mysql
from tests.e2e.forked import ForkedProcess

T = TypeVar("T")

STALL_TRIGGER = "kill9_stall"
_STALL_NUMBERS = "kill9_numbers"


async def sigkill(process: asyncio.subprocess.Process | ForkedProcess) -> None:
    """SIGKILL (no handler, no cleanup, no `finally`) and reap it."""
    if process.returncode is None:
        os.kill(process.pid, signal.SIGKILL)
    code = await process.wait()
    assert code == -signal.SIGKILL, f"process ended with {code} before it was killed"


async def poll(what: str, probe: Callable[[], Awaitable[T | None]], seconds: float = 40) -> T:
    """`probe()` until it returns something truthy; bounded, never a correctness sleep."""
    deadline = time.monotonic() + seconds
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.05)


async def fetch(url: str, query: Executable | str, **params: Any) -> list[dict[str, Any]]:
    """Rows of one query on a fresh connection (mappings, typed when `query` is Core)."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    statement = text(query) if isinstance(query, str) else query
    try:
        async with engine.connect() as conn:
            result = await conn.execute(statement, params)
            return [dict(row) for row in result.mappings().all()]
    finally:
        await engine.dispose()


async def execute(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _stall_inserts(url: str, table: str) -> None:
    """Make every INSERT into `table` hang (until the process is killed), by a trigger.

    MariaDB: the trigger sleeps. SQLite has no sleep, so its trigger's WHEN counts a 10^12-row
    cross join (the writer burns CPU until it is killed; readers go on under WAL). The
    test uses it to hold a process at one point between two transactions and SIGKILL it there.
    """
    if url_is_mysql(url):
        await execute(
            url,
            f"CREATE TRIGGER {STALL_TRIGGER} BEFORE INSERT ON {table} FOR EACH ROW "
            "SET @kill9_stalled = SLEEP(120)",
        )
        return
    digits = ", ".join(f"({i})" for i in range(1000))
    await execute(
        url,
        f"CREATE TABLE {_STALL_NUMBERS} (n INTEGER PRIMARY KEY)",
        f"INSERT INTO {_STALL_NUMBERS} (n) VALUES {digits}",
        f"CREATE TRIGGER {STALL_TRIGGER} BEFORE INSERT ON {table} FOR EACH ROW WHEN "
        f"(SELECT count(*) FROM {_STALL_NUMBERS} a, {_STALL_NUMBERS} b, {_STALL_NUMBERS} c, "
        f"{_STALL_NUMBERS} d WHERE a.n + b.n + c.n + d.n < 0) = 0 BEGIN SELECT 1; END",
    )


@asynccontextmanager
async def stalled_inserts(url: str, table: str) -> AsyncIterator[StallWatch]:
    """Inserts into `table` hang inside the block; kill the process that hangs before leaving.

    On the way out (also when the test failed) the stall ends: on MariaDB the sessions left
    behind are killed first, so nothing keeps a lock on the test database.
    """
    await _stall_inserts(url, table)
    try:
        yield StallWatch(url)
    finally:
        await _end_stall(url)


class StallWatch:
    """Tells when a process hangs in the stalled insert (`stall_inserts`), seen from outside.

    MariaDB lists the session sleeping in the trigger (it shows the trigger's statement). SQLite
    shows nothing of another process's statement, so there it is the write lock held without
    a break for `held_for` seconds: ordinary write transactions here take milliseconds.
    """

    def __init__(self, url: str, held_for: float = 1.0) -> None:
        self.url = url
        self.held_for = held_for
        self._locked_since: float | None = None

    async def stalled(self) -> bool:
        if url_is_mysql(self.url):
            rows = await fetch(
                self.url,
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
                "AND ID <> CONNECTION_ID() AND STATE = 'User sleep' AND INFO LIKE :sleeping",
                sleeping="%@kill9_stalled = SLEEP%",
            )
            return bool(rows)
        if not await asyncio.to_thread(_sqlite_write_locked, self.url):
            self._locked_since = None
            return False
        now = time.monotonic()
        if self._locked_since is None:
            self._locked_since = now
        return now - self._locked_since >= self.held_for


def _sqlite_write_locked(url: str) -> bool:
    path = make_url(url).database or ""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
        return True
    finally:
        conn.close()


async def _end_stall(url: str) -> None:
    """Drop the stall trigger once its process is dead (MariaDB: kill its orphaned session)."""
    if url_is_mysql(url):
        await kill_other_sessions(url)
        await execute(url, f"DROP TRIGGER {STALL_TRIGGER}")
        return
    await execute(url, f"DROP TRIGGER {STALL_TRIGGER}", f"DROP TABLE {_STALL_NUMBERS}")


async def kill_other_sessions(url: str) -> None:
    """KILL the server sessions a SIGKILLed client left on this database (MariaDB only).

    A session busy in a statement notices its client is gone only when the statement ends;
    a sleeping trigger would hold its locks for minutes.
    """
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            ids = (
                (
                    await conn.execute(
                        text(
                            "SELECT ID FROM information_schema.PROCESSLIST "
                            "WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
                        )
                    )
                )
                .scalars()
                .all()
            )
            for session in ids:
                with contextlib.suppress(Exception):  # already gone
                    await conn.execute(text(f"KILL {int(session)}"))
    finally:
        await engine.dispose()
