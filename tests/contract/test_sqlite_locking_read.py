"""SQLite units of work: a locking read begins the write transaction, and a connection is reused.

`Subscriptions.get_for_update` on a SQLite file takes both write locks (this process's writer
lock, SQLite's own) with `BEGIN IMMEDIATE` before it reads, instead of a no-op `UPDATE` that
also wrote a page; units of work that follow each other keep one pooled connection (issue 10).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
from sqlalchemy.pool import QueuePool

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.mysql.engine import create_engine, loop_engine_of
from adapters.mysql.schema_upgrade import upgrade_database
from adapters.mysql.sqlite_inloop import Writer
from adapters.mysql.sqlite_loop import LoopConnection
from adapters.mysql.uow import SqlUnitOfWorkFactory
from tests.contract.storage_backends import TEST_KEY, seed_world, stored_world
from tests.dbtest import sqlite_url_for


@pytest.fixture
async def factory(tmp_path: Path) -> AsyncIterator[tuple[SqlUnitOfWorkFactory, Path]]:
    path = tmp_path / "lnvps.db"
    url = sqlite_url_for(path)
    await upgrade_database(url)
    engine = create_engine(url)
    try:
        yield SqlUnitOfWorkFactory(engine, AesGcmSecretBox(TEST_KEY)), path
    finally:
        await engine.dispose()


def _driver(conn: object) -> sqlite3.Connection:
    assert isinstance(conn, LoopConnection)
    driver = conn.sync_connection.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


@pytest.mark.parametrize("lock", ["subscription", "user row"])
async def test_a_locking_read_holds_sqlites_write_lock_and_commits_no_page(
    factory: tuple[SqlUnitOfWorkFactory, Path], lock: str
) -> None:
    """`Subscriptions.get_for_update` and a repository's row lock (`Users.lock`, through
    `SqlRecords._lock_row`) alike."""
    uow_factory, path = factory
    world = await stored_world(uow_factory)
    wal = path.with_name(path.name + "-wal")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        before = wal.stat().st_size
        async with uow_factory() as uow:
            if lock == "subscription":
                sub = await uow.subscriptions.get_for_update(world.subscription.id)
                assert sub == world.subscription
            else:
                await uow.users.lock(world.user.id)
            assert _driver(uow._connection()).in_transaction
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # another process cannot write meanwhile
            await uow.commit()
        other.execute("BEGIN IMMEDIATE")  # free again after the commit
        other.execute("ROLLBACK")
        assert wal.stat().st_size == before  # the old no-op UPDATE appended a page frame
    finally:
        other.close()


async def test_a_second_locking_read_waits_for_the_first_transaction_to_end(
    factory: tuple[SqlUnitOfWorkFactory, Path],
) -> None:
    uow_factory, _ = factory
    world = await stored_world(uow_factory)
    sub_id = world.subscription.id
    order: list[str] = []

    async def second() -> None:
        async with uow_factory() as uow:
            await uow.subscriptions.get_for_update(sub_id)
            order.append("second locked")
            await uow.commit()

    async with uow_factory() as uow:
        await uow.subscriptions.get_for_update(sub_id)
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # held by the writer lock while the first goes on
        order.append("first commits")
        await uow.commit()
    await asyncio.wait_for(waiting, 5)
    assert order == ["first commits", "second locked"]


async def test_a_locking_read_after_a_write_stays_in_that_transaction(
    factory: tuple[SqlUnitOfWorkFactory, Path],
) -> None:
    """Once the transaction wrote, it already holds both locks: no second `BEGIN` (which
    SQLite would refuse inside a transaction), and the read sees the transaction's write."""
    uow_factory, _ = factory
    async with uow_factory() as uow:
        world = await seed_world(uow)
        sub = await uow.subscriptions.get_for_update(world.subscription.id)
        assert sub == world.subscription  # read inside the seeding transaction
        await uow.rollback()
    async with uow_factory() as uow:
        assert await uow.subscriptions.get(world.subscription.id) is None


async def test_units_of_work_one_after_the_other_keep_one_connection(
    factory: tuple[SqlUnitOfWorkFactory, Path],
) -> None:
    """The pool hands out the connection returned last, whose page cache is still good
    (first in, first out took each pooled connection in turn)."""
    uow_factory, _ = factory
    async with uow_factory() as a, uow_factory() as b, uow_factory() as c:  # three pooled
        at_once = {id(_driver(uow._connection())) for uow in (a, b, c)}
    seen = []
    for _ in range(4):
        async with uow_factory() as uow:
            seen.append(id(_driver(uow._connection())))
            await uow.subscriptions.get(1)
    assert len(at_once) == 3
    assert len(set(seen)) == 1


async def test_a_rollback_right_after_the_lock_gives_sqlites_write_lock_back(
    factory: tuple[SqlUnitOfWorkFactory, Path],
) -> None:
    """`BEGIN IMMEDIATE` goes to the driver: the rollback must end it there too, or another
    process could not write until the connection went back to the pool."""
    uow_factory, path = factory
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        async with uow_factory() as uow:
            conn = uow._connection()
            assert isinstance(conn, LoopConnection)
            await conn.begin_write()
            await uow.rollback()
            assert not _driver(conn).in_transaction
            other.execute("BEGIN IMMEDIATE")  # free at once, the connection still held
            other.execute("ROLLBACK")
    finally:
        other.close()


async def test_only_a_commit_that_changed_rows_counts_towards_the_checkpoint(
    factory: tuple[SqlUnitOfWorkFactory, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A locking transaction that only read appended nothing to the WAL: the checkpoint
    schedule (every CHECKPOINT_EVERY writing commits) does not count it."""
    uow_factory, _ = factory
    world = await stored_world(uow_factory)
    counted: list[int] = []
    real = Writer.committed

    def counting(writer: Writer) -> None:
        counted.append(1)
        real(writer)

    monkeypatch.setattr(Writer, "committed", counting)
    async with uow_factory() as uow:
        await uow.subscriptions.get_for_update(world.subscription.id)
        await uow.commit()
    assert counted == []
    async with uow_factory() as uow:
        sub = await uow.subscriptions.get_for_update(world.subscription.id)
        assert sub is not None
        await uow.subscriptions.update(attrs.evolve(sub, name="renamed"))
        await uow.commit()
    assert counted == [1]


async def test_a_writer_waiting_for_the_lock_holds_no_connection_and_gets_the_last_writers(
    factory: tuple[SqlUnitOfWorkFactory, Path],
) -> None:
    """A unit of work that begins by writing takes its pooled connection once it holds the
    writer lock: while it waits it holds none, and then it gets the one the writer before it
    committed on (returned last), whose page cache SQLite kept. Taken at the start, 32
    concurrent renewals held ~27 connections waiting and read on connections another one
    had written after, their caches emptied (issue 10)."""
    uow_factory, _ = factory
    world = await stored_world(uow_factory)
    sub_id = world.subscription.id
    twin = loop_engine_of(uow_factory.engine)
    assert twin is not None
    pool = twin.sync_engine.pool
    assert isinstance(pool, QueuePool)
    drivers: list[int] = []

    async def second() -> None:
        async with uow_factory() as uow:
            await uow.subscriptions.get_for_update(sub_id)
            drivers.append(id(_driver(uow._connection())))
            await uow.commit()

    async with uow_factory() as uow:
        await uow.subscriptions.get_for_update(sub_id)
        drivers.append(id(_driver(uow._connection())))
        waiting = [asyncio.create_task(second()) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in waiting)
        assert pool.checkedout() == 1  # only the writer's own
        await uow.commit()
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert len(set(drivers)) == 1
