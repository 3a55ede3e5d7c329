"""SQLite in the event loop: writers of one process take turns without blocking the loop.

Each test runs on the async engine (`sqlite_inloop`: migrations, the legacy back-fill) and on
its sync twin that units of work use (`sqlite_loop`), unless it names one."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, literal_column, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.mysql import sqlite_inloop
from adapters.mysql.engine import create_engine, loop_engine_of
from adapters.mysql.sqlite_inloop import InLoopConnection
from adapters.mysql.sqlite_loop import LoopConnection, writes
from adapters.mysql.uow import SqlUnitOfWorkFactory
from ports.storage import StorageBusy


class Twin:
    """The sync twin of an async SQLite engine, with the async engine's `dispose`."""

    def __init__(self, engine: AsyncEngine) -> None:
        loop = loop_engine_of(engine)
        assert loop is not None
        self.owner, self.loop = engine, loop
        self.connect, self.begin = loop.connect, loop.begin

    async def dispose(self) -> None:
        await self.owner.dispose()


Engine = AsyncEngine | Twin
Make = Callable[..., Engine]


@pytest.fixture(params=["async", "loop"])
def make(request: pytest.FixtureRequest) -> Make:
    """`create_engine(url, **kwargs)`, or its units of work's twin."""

    def made(url: str, **kwargs: Any) -> Engine:
        engine = create_engine(url, **kwargs)
        return engine if request.param == "async" else Twin(engine)

    return made


def busy_error(engine: Engine) -> type[Exception]:
    """What a write gets past the busy timeout: SQLAlchemy's error, or a unit of work's."""
    return StorageBusy if isinstance(engine, Twin) else OperationalError


async def test_the_engine_runs_sqlite3_in_the_loop_with_wal_and_normal_sync(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert isinstance(raw.driver_connection, InLoopConnection)
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 1  # NORMAL
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_a_second_writer_waits_asynchronously_while_the_loop_runs(
    make: Make, tmp_path: Path
) -> None:
    engine = make(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1, 0)"))
        first_wrote = asyncio.Event()
        release_first = asyncio.Event()
        order: list[str] = []

        async def first() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE t SET n = n + 1"))
                first_wrote.set()
                await release_first.wait()  # holds the write lock across an await
                order.append("first commits")

        async def second() -> None:
            await first_wrote.wait()
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE t SET n = n + 10"))
                order.append("second wrote")

        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        await first_wrote.wait()
        for _ in range(5):  # the loop keeps running while the second writer waits
            await asyncio.sleep(0.01)
        assert order == []
        release_first.set()
        await asyncio.gather(*tasks)
        assert order == ["first commits", "second wrote"]
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT n FROM t"))).scalar() == 11
    finally:
        await engine.dispose()


async def test_a_writer_waiting_past_the_busy_timeout_gets_database_is_locked(
    make: Make,
    tmp_path: Path,
) -> None:
    engine = make(f"sqlite:///{tmp_path / 'c.db'}", connect_args={"timeout": 0.2})
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)"))
        async with engine.connect() as holder:
            await holder.execute(text("INSERT INTO t VALUES (1, 0)"))  # lock held, not committed
            async with engine.connect() as other:
                with pytest.raises(busy_error(engine)):
                    await other.execute(text("INSERT INTO t VALUES (2, 0)"))
            await holder.rollback()
        async with engine.begin() as conn:  # the lock was released by the rollback
            await conn.execute(text("INSERT INTO t VALUES (3, 0)"))
    finally:
        await engine.dispose()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the calls sent to a thread with `asyncio.to_thread`."""
    sent: list[str] = []
    real_to_thread = asyncio.to_thread

    async def counting(func: object, /, *args: object) -> object:
        sent.append(getattr(func, "__name__", "?"))
        return await real_to_thread(func, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "to_thread", counting)
    return sent


async def _write_then(engine: Engine, finish: str) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO t DEFAULT VALUES"))
        await getattr(conn, finish)()


async def test_under_wal_writes_and_commits_run_in_the_loop_without_a_thread(
    make: Make, tmp_path: Path, hops: list[str]
) -> None:
    """Reads, writes, commits and rollbacks finish where they are awaited (issue 10: a thread
    hop per write cost ~25 % of a write request's CPU); the automatic checkpoint is off."""
    engine = make(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        for finish in ("commit", "rollback"):
            await _write_then(engine, finish)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == 0
    finally:
        await engine.dispose()
    assert hops == []


async def test_outside_wal_a_writing_transaction_runs_on_a_thread(
    make: Make, tmp_path: Path, hops: list[str]
) -> None:
    """In rollback-journal mode a commit fsyncs: writes and their commit go to a thread."""
    engine = make(f"sqlite:///{tmp_path / 'd.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("PRAGMA journal_mode=delete"))
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        for finish in ("commit", "rollback"):
            hops.clear()
            await _write_then(engine, finish)
            assert hops == ["<lambda>", finish]
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_with_a_slow_trigger_the_write_runs_on_a_thread_and_the_loop_goes_on(
    make: Make, tmp_path: Path, hops: list[str]
) -> None:
    """A database with a trigger sends its writes to a thread: here the trigger makes each
    INSERT count a 1.3 × 10^7-row cross join, and the loop keeps ticking while it runs."""
    engine = make(f"sqlite:///{tmp_path / 'trig.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            await conn.execute(text("CREATE TABLE n (i INTEGER PRIMARY KEY)"))
            await conn.execute(
                text(
                    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 60)"
                    " INSERT INTO n SELECT i FROM c"
                )
            )
        await _write_then(engine, "commit")
        assert hops == []  # no trigger yet: in the loop
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE TRIGGER slow BEFORE INSERT ON t WHEN (SELECT count(*) FROM n a, n b,"
                    " n c, n d) < 0 BEGIN SELECT 1; END"
                )
            )
        hops.clear()
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        ticker = asyncio.create_task(tick())
        await _write_then(engine, "commit")
        ticker.cancel()
        assert hops == ["<lambda>", "commit"]
        assert ticks >= 5  # the loop ran while the INSERT's trigger counted
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 2
    finally:
        await engine.dispose()


async def test_a_trigger_another_connection_made_sends_the_next_locking_transaction_to_a_thread(
    tmp_path: Path, hops: list[str]
) -> None:
    """The journal mode is asked once per pooled connection, the trigger check stays on every
    write transaction: one begun by `begin_write` checks inside it, after its `BEGIN`."""
    path = tmp_path / "trig2.db"
    twin = Twin(create_engine(f"sqlite:///{path}"))

    async def locked_insert() -> None:
        async with twin.connect() as conn:
            assert isinstance(conn, LoopConnection)
            await conn.begin_write()
            await conn.execute(text("INSERT INTO t DEFAULT VALUES"))
            await conn.commit()

    try:
        async with twin.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        await locked_insert()
        assert hops == []
        other = sqlite3.connect(path)
        try:
            other.execute("CREATE TRIGGER t_seen BEFORE INSERT ON t BEGIN SELECT 1; END")
            other.commit()
        finally:
            other.close()
        await locked_insert()
        assert hops[-2:] == ["<lambda>", "commit"]  # the INSERT and its commit on a thread
    finally:
        await twin.dispose()


async def test_a_pooled_connection_is_asked_its_journal_mode_once(tmp_path: Path) -> None:
    """Once a connection has used the WAL no other one can take the database out of it
    while it is open (SQLite answers "database is locked"), so its write transactions do
    not ask again (a PRAGMA each, issue 10); a PRAGMA of its own makes it ask again
    (`test_outside_wal_a_writing_transaction_runs_on_a_thread`)."""
    twin = Twin(create_engine(f"sqlite:///{tmp_path / 'once.db'}", pool_size=1))
    asked: list[str] = []
    driver: sqlite3.Connection | None = None
    try:
        async with twin.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            assert isinstance(conn, LoopConnection)
            driver = conn.sync_connection.connection.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            driver.set_trace_callback(asked.append)
        for _ in range(3):
            async with twin.begin() as conn:
                await conn.execute(text("INSERT INTO t DEFAULT VALUES"))
        for _ in range(2):
            async with twin.connect() as conn:
                assert isinstance(conn, LoopConnection)
                await conn.begin_write()
                await conn.execute(text("INSERT INTO t DEFAULT VALUES"))
                await conn.commit()
        assert [sql for sql in asked if "journal_mode" in sql] == []
        assert len([sql for sql in asked if "schema_version" in sql]) == 5
    finally:
        if driver is not None:
            driver.set_trace_callback(None)
        await twin.dispose()


async def test_a_write_locked_by_another_process_waits_with_the_loop_running(
    make: Make,
    tmp_path: Path,
) -> None:
    """Another connection (another process: the worker, the CLI) holds the write lock: our
    INSERT waits for it in pauses while the loop goes on, then succeeds once it is free."""
    path = tmp_path / "other.db"
    engine = make(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        other.execute("BEGIN IMMEDIATE")  # the write lock, outside this engine
        other.execute("INSERT INTO t VALUES (1)")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        ticker = asyncio.create_task(tick())

        async def write() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (2)"))

        writing = asyncio.create_task(write())
        await asyncio.sleep(0.2)
        assert not writing.done()
        assert ticks >= 3  # the loop was not held by the waiting INSERT (~40 ticks when idle;
        # a loaded machine, e.g. the suite on two workers, had it miss 10)
        other.execute("COMMIT")
        await asyncio.wait_for(writing, 5)
        ticker.cancel()
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id FROM t ORDER BY id"))).scalars().all()
        assert rows == [1, 2]
    finally:
        other.close()
        await engine.dispose()


async def test_a_write_locked_past_the_busy_timeout_gets_database_is_locked(
    make: Make,
    tmp_path: Path,
) -> None:
    path = tmp_path / "stuck.db"
    engine = make(f"sqlite:///{path}", connect_args={"timeout": 0.2})
    other = sqlite3.connect(path, isolation_level=None)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        async with engine.connect() as conn:
            with pytest.raises(busy_error(engine)):
                await conn.execute(text("INSERT INTO t VALUES (1)"))
        assert time.monotonic() - started >= 0.2
        other.execute("ROLLBACK")
        async with engine.begin() as conn:  # nothing of the refused INSERT is left behind
            await conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        other.close()
        await engine.dispose()


async def test_the_wal_is_checkpointed_on_a_thread_and_stays_small(
    make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The automatic checkpoint is off on the engine's connections (it would run inside a
    commit, in the loop); every CHECKPOINT_EVERY writing commits one runs on a thread, so the
    WAL file is reused instead of growing with every commit. Each checkpoint is waited for
    before the next commit (a checkpoint still running when the next is due is skipped, and
    how often that happens depends on the machine's load, not on the rule)."""
    every = 20
    monkeypatch.setattr(sqlite_inloop, "CHECKPOINT_EVERY", every)
    threads: list[str] = []
    running: list[int] = [0]
    finished: list[int] = [0]  # checkpoints whose task ended (the writer may start another)
    real = sqlite_inloop._checkpoint_passive
    real_done = sqlite_inloop.Writer._checkpoint_done

    def done(writer: sqlite_inloop.Writer, task: asyncio.Task[None]) -> None:
        real_done(writer, task)
        finished[0] += 1

    def recording(conn: sqlite3.Connection) -> None:
        threads.append(threading.current_thread().name)
        running[0] += 1
        try:
            real(conn)
        finally:
            running[0] -= 1

    async def checkpoints_done(commits: int) -> None:
        expected = 2 * (commits // every)  # two passes per checkpoint
        for _ in range(2000):
            if len(threads) == expected and not running[0] and finished[0] * 2 == expected:
                return
            await asyncio.sleep(0.005)
        raise AssertionError((commits, expected, threads))

    monkeypatch.setattr(sqlite_inloop, "_checkpoint_passive", recording)
    monkeypatch.setattr(sqlite_inloop.Writer, "_checkpoint_done", done)
    path = tmp_path / "wal.db"
    engine = make(f"sqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, pad BLOB)"))
        for n in range(400):  # ~400 × 2 pages appended without checkpoints: ~3 MiB of WAL
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (:n, zeroblob(3000))"), {"n": n})
            await checkpoints_done(n + 2)  # the CREATE TABLE's commit and n + 1 inserts
        assert len(threads) == 2 * (401 // every)
        assert threading.main_thread().name not in threads
        wal_size = (await asyncio.to_thread(Path(f"{path}-wal").stat)).st_size
        assert wal_size < 1024 * 1024
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 400
    finally:
        await engine.dispose()


async def test_writers_go_on_during_the_checkpoints_first_pass_not_its_last(
    make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first pass copies the WAL while commits go on; the last, short one holds the
    one-writer lock, so that no commit lands past what it copied."""
    monkeypatch.setattr(sqlite_inloop, "CHECKPOINT_EVERY", 5)
    passes: list[threading.Event] = [threading.Event(), threading.Event()]
    started: list[threading.Event] = [threading.Event(), threading.Event()]
    real = sqlite_inloop._checkpoint_passive

    def held(conn: sqlite3.Connection) -> None:
        n = sum(1 for e in started if e.is_set())
        started[n].set()
        passes[n].wait(10)
        real(conn)

    monkeypatch.setattr(sqlite_inloop, "_checkpoint_passive", held)
    engine = make(f"sqlite:///{tmp_path / 'two.db'}")

    async def insert(n: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})

    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        for n in range(5):  # the fifth writing commit starts a checkpoint
            await insert(n)
        assert await asyncio.to_thread(started[0].wait, 5)
        await asyncio.wait_for(insert(100), 5)  # during the first pass: commits
        passes[0].set()
        assert await asyncio.to_thread(started[1].wait, 5)
        blocked = asyncio.create_task(insert(101))
        await asyncio.sleep(0.2)
        assert not blocked.done()  # during the last pass: waits for the lock
        passes[1].set()
        await asyncio.wait_for(blocked, 5)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 7
    finally:
        for event in passes:
            event.set()
        await engine.dispose()


async def test_a_file_database_serves_32_concurrent_units_of_work_without_queueing(
    make: Make,
    tmp_path: Path,
) -> None:
    """The pool holds as many connections as the API's 32 concurrent requests (24 + 16, like
    MariaDB's): with SQLAlchemy's default 5 + 10, the 16th waiter queued, and a queued request
    could be overtaken by newer ones for seconds under load (issue 10)."""
    engine = make(f"sqlite:///{tmp_path / 'pool.db'}", pool_timeout=1)
    held: list[object] = []
    all_held, release = asyncio.Event(), asyncio.Event()
    try:

        async def hold() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                held.append(conn)
                if len(held) == 32:
                    all_held.set()
                await release.wait()

        tasks = [asyncio.create_task(hold()) for _ in range(32)]
        waiting = asyncio.create_task(all_held.wait())
        await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
        assert len(held) == 32, [t.exception() for t in tasks if t.done()]
        release.set()
        await asyncio.gather(*tasks, waiting)
    finally:
        await engine.dispose()


async def test_a_busy_answer_while_choosing_where_to_write_sends_the_write_to_a_thread(
    hops: list[str],
) -> None:
    """`writes_in_loop` asks SQLite two PRAGMAs; if it answers busy (a WAL index being
    recovered), the transaction takes the thread path, which waits like any statement."""

    class Busy:
        def execute(self, sql: str) -> object:
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = 5
            raise error

    writer = sqlite_inloop.Writer(1.0, None)
    assert writer.writes_in_loop(Busy()) is False  # type: ignore[arg-type]

    class Broken:
        def execute(self, sql: str) -> object:
            raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        writer.writes_in_loop(Broken())  # type: ignore[arg-type]


async def test_units_of_work_on_a_sqlite_file_run_on_sqlite3_without_an_async_layer(
    tmp_path: Path,
) -> None:
    """The factory's units of work use the twin: its connections are `sqlite3`'s own, set up
    as the async engine's (WAL, NORMAL, foreign keys, no automatic checkpoint)."""
    engine = create_engine(f"sqlite:///{tmp_path / 'uow.db'}")
    try:
        factory = SqlUnitOfWorkFactory(engine, AesGcmSecretBox(bytes(32)))
        async with factory() as uow:
            conn = uow._connection()
            assert isinstance(conn, LoopConnection)
            driver = conn.sync_connection.connection.driver_connection
            assert type(driver) is sqlite3.Connection
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "wal_autocheckpoint")
            }
        assert pragmas == {
            "journal_mode": "wal",
            "synchronous": 1,
            "foreign_keys": 1,
            "wal_autocheckpoint": 0,
        }
    finally:
        await engine.dispose()


class _CommitBusyOnce(sqlite3.Connection):
    """A connection whose first commit that has something to commit answers SQLITE_BUSY."""

    refused = 0

    def commit(self) -> None:
        if self.in_transaction and not _CommitBusyOnce.refused:
            _CommitBusyOnce.refused += 1
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = 5
            raise error
        super().commit()


async def test_a_commit_answered_busy_is_waited_out_and_not_lost(tmp_path: Path) -> None:
    """SQLAlchemy's own commit ends its transaction even when the driver's fails, so a retry
    through it would commit nothing: the twin retries the driver's commit, then ends
    SQLAlchemy's."""
    _CommitBusyOnce.refused = 0
    path = tmp_path / "commit.db"
    twin = Twin(create_engine(f"sqlite:///{path}", connect_args={"factory": _CommitBusyOnce}))
    try:
        async with twin.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        async with twin.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (7)"))
        assert _CommitBusyOnce.refused == 1
        other = sqlite3.connect(path)
        try:
            assert other.execute("SELECT id FROM t").fetchall() == [(7,)]
        finally:
            other.close()
    finally:
        await twin.dispose()


async def test_a_unit_of_work_waits_in_the_loop_for_a_free_connection(tmp_path: Path) -> None:
    """The twin's pool is sync: a checkout must never wait inside the loop. With every
    connection out, the next unit of work waits (the loop runs on) and gets the first one
    given back; one cancelled while it waits takes no place with it."""
    twin = Twin(create_engine(f"sqlite:///{tmp_path / 'free.db'}", pool_size=2))
    try:
        first, second = await twin.connect(), await twin.connect()
        third = asyncio.create_task(twin.loop._checkout())
        cancelled = asyncio.create_task(twin.loop._checkout())
        await asyncio.sleep(0.05)
        assert not third.done() and not cancelled.done()
        cancelled.cancel()
        await first.close()
        conn = await asyncio.wait_for(third, 1)
        await second.close()
        fourth = await asyncio.wait_for(twin.loop._checkout(), 1)  # the cancelled took none
        for held in (conn, fourth):
            assert (await held.execute(text("SELECT 1"))).scalar() == 1
            await held.close()
    finally:
        await twin.dispose()


@pytest.mark.parametrize("read", ["first", "fetchone", "a loop left early"])
async def test_a_result_left_half_read_leaves_no_old_snapshot_to_the_next_unit_of_work(
    make: Make, tmp_path: Path, read: str
) -> None:
    """A SELECT whose rows were not all fetched keeps its read snapshot open in `sqlite3`,
    and returning the connection to the pool does not end it: every result is read to its
    end when its statement runs, so the next unit of work on that connection sees what was
    committed meanwhile."""
    path = tmp_path / "snapshot.db"
    engine = make(f"sqlite:///{path}", pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1, 0), (2, 0)"))
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT n FROM t ORDER BY id"))
            if read == "first":
                result.first()
            elif read == "fetchone":
                result.fetchone()
            else:
                for _ in result:
                    break
        other = sqlite3.connect(path)
        try:
            other.execute("UPDATE t SET n = 7")
            other.commit()
        finally:
            other.close()
        async with engine.connect() as conn:  # the pool's one connection again
            assert (await conn.execute(text("SELECT n FROM t WHERE id = 1"))).scalar() == 7
    finally:
        await engine.dispose()


async def test_an_insert_of_many_rows_returns_every_row_it_inserted(
    make: Make, tmp_path: Path
) -> None:
    """SQLAlchemy buffers the RETURNING rows of a many-row INSERT itself; reading every
    result to its end must keep them, not read the spent cursor again."""
    engine = make(f"sqlite:///{tmp_path / 'many.db'}")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("n", Integer))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)"))
            result = await conn.execute(
                insert(table).returning(table.c.id, table.c.n), [{"n": 1}, {"n": 2}, {"n": 3}]
            )
            assert sorted(result.all()) == [(1, 1), (2, 2), (3, 3)]
    finally:
        await engine.dispose()


async def test_a_unit_of_work_finding_no_free_connection_for_the_pool_timeout_is_told_busy(
    tmp_path: Path,
) -> None:
    twin = Twin(create_engine(f"sqlite:///{tmp_path / 'full.db'}", pool_size=1, pool_timeout=0.2))
    try:
        held = await twin.connect()
        started = time.monotonic()
        with pytest.raises(StorageBusy):
            await twin.connect()
        assert time.monotonic() - started >= 0.2
        await held.close()
        async with twin.connect() as conn:  # the refused checkout took no place
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await twin.dispose()


@pytest.mark.parametrize(
    ("sql", "writing"),
    [
        ("SELECT 1", False),
        ("  select * from t", False),
        ("PRAGMA journal_mode", False),
        ("PRAGMA user_version = 3", True),
        ("INSERT INTO t DEFAULT VALUES", True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", True),  # unsure: taken as a write
    ],
)
def test_textual_sql_is_judged_by_its_text(sql: str, writing: bool) -> None:
    assert writes(text(sql)) is writing


def test_a_textual_insert_typed_as_a_select_is_a_write() -> None:
    returning = text("INSERT INTO t DEFAULT VALUES RETURNING id").columns(id=Integer)
    assert returning.is_select and writes(returning)
    assert not writes(select(literal_column("1")))


async def test_a_cancelled_call_on_a_thread_is_waited_for_before_the_cancel_goes_on() -> None:
    """A write transaction on a thread (triggers, no WAL) that its task gives up must not
    leave its statement running while the connection is rolled back and pooled again."""
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.2)
        finished.set()

    writer = sqlite_inloop.Writer(1.0, None)
    task = asyncio.create_task(writer.patiently(slow, on_thread=True))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()
