"""SQLite in the event loop: writers of one process take turns without blocking the loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from adapters.mysql.engine import create_engine
from adapters.mysql.sqlite_inloop import InLoopConnection


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


async def test_a_second_writer_waits_asynchronously_while_the_loop_runs(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'b.db'}")
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
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'c.db'}", connect_args={"timeout": 0.2})
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)"))
        async with engine.connect() as holder:
            await holder.execute(text("INSERT INTO t VALUES (1, 0)"))  # lock held, not committed
            async with engine.connect() as other:
                with pytest.raises(OperationalError, match="database is locked"):
                    await other.execute(text("INSERT INTO t VALUES (2, 0)"))
            await holder.rollback()
        async with engine.begin() as conn:  # the lock was released by the rollback
            await conn.execute(text("INSERT INTO t VALUES (3, 0)"))
    finally:
        await engine.dispose()


async def test_a_writing_transaction_ends_on_a_thread_in_every_journal_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit and rollback of a writing transaction run on a thread, WAL included: the
    automatic checkpoint after a commit (page copies, an fsync) would otherwise run in it."""
    hops: list[str] = []
    real_to_thread = asyncio.to_thread

    async def counting(func: object, /, *args: object) -> object:
        hops.append(getattr(func, "__name__", "?"))
        return await real_to_thread(func, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "to_thread", counting)
    for mode, db in (("wal", "w.db"), ("delete", "d.db")):
        engine = create_engine(f"sqlite:///{tmp_path / db}")
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f"PRAGMA journal_mode={mode}"))
                await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            for finish in ("commit", "rollback"):
                hops.clear()
                async with engine.connect() as conn:
                    await conn.execute(text("INSERT INTO t DEFAULT VALUES"))
                    await getattr(conn, finish)()
                assert hops == ["execute", finish], (mode, hops)
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 1
        finally:
            await engine.dispose()


async def test_a_file_database_serves_32_concurrent_units_of_work_without_queueing(
    tmp_path: Path,
) -> None:
    """The pool holds as many connections as the API's 32 concurrent requests (24 + 16, like
    MariaDB's): with SQLAlchemy's default 5 + 10, the 16th waiter queued, and a queued request
    could be overtaken by newer ones for seconds under load (issue 10)."""
    engine = create_engine(f"sqlite:///{tmp_path / 'pool.db'}", pool_timeout=1)
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
