"""MariaDB pool hooks: no ROLLBACK after a COMMIT, uncommitted work still rolled back, idle
connections pinged (and replaced when dead) before use."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.mysql import pool_hooks
from adapters.mysql.engine import create_engine
from adapters.mysql.uow import SqlUnitOfWorkFactory
from tests.dbtest import create_mysql_database, drop_mysql_database

pytestmark = pytest.mark.mysql


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    fake = FakeMonotonic()
    monkeypatch.setattr(pool_hooks, "monotonic", fake)
    return fake


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    """An engine of one pooled connection on a fresh database with a table `t`."""
    name, url = await create_mysql_database()
    made = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with made.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB"))
        yield made
    finally:
        await made.dispose()
        await drop_mysql_database(name)


async def _rollbacks_so_far(engine: AsyncEngine) -> int:
    """`Com_rollback` of the pooled session (its own read's ROLLBACK on return not counted)."""
    async with engine.connect() as conn:
        found = await conn.execute(text("SHOW SESSION STATUS LIKE 'Com_rollback'"))
        return int(found.one()[1])


async def _ids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT id FROM t ORDER BY id"))).scalars())


async def test_a_committed_unit_of_work_goes_back_without_a_rollback(
    engine: AsyncEngine,
) -> None:
    uows = SqlUnitOfWorkFactory(engine, AesGcmSecretBox(os.urandom(32)))
    before = await _rollbacks_so_far(engine)  # its own read is rolled back on return: +1
    async with uows() as uow:
        await uow._connection().execute(text("INSERT INTO t VALUES (1)"))
        await uow.commit()
    assert await _rollbacks_so_far(engine) == before + 1  # only the read's, none after COMMIT
    assert await _ids(engine) == [1]


async def test_work_left_open_is_rolled_back_on_return(engine: AsyncEngine) -> None:
    uows = SqlUnitOfWorkFactory(engine, AesGcmSecretBox(os.urandom(32)))
    async with uows() as uow:  # not committed: the Connection rolls it back
        await uow._connection().execute(text("INSERT INTO t VALUES (1)"))
    async with engine.connect() as conn:  # behind SQLAlchemy's back: the pool hook does
        raw = await conn.get_raw_connection()
        cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
        await cursor.execute("INSERT INTO t VALUES (2)")
    async with uows() as uow:  # committed, then more work through the Connection
        await uow._connection().execute(text("INSERT INTO t VALUES (3)"))
        await uow.commit()
        await uow._connection().execute(text("INSERT INTO t VALUES (4)"))
    assert await _ids(engine) == [3]


async def _session_id(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT CONNECTION_ID()"))).scalar_one())


async def _kill(engine: AsyncEngine, session: int) -> None:
    other = create_engine(engine.url, pool_size=1, max_overflow=0)
    try:
        async with other.connect() as conn:
            await conn.execute(text(f"KILL {session}"))
    finally:
        await other.dispose()


async def test_a_connection_idle_long_enough_is_pinged_and_replaced_when_dead(
    engine: AsyncEngine, clock: FakeMonotonic
) -> None:
    first = await _session_id(engine)
    await _kill(engine, first)
    clock.now += pool_hooks.IDLE_PING_AFTER_S + 1
    second = await _session_id(engine)  # the ping failed: a new connection, no error
    assert second != first
    assert await _session_id(engine) == second  # alive: kept


async def test_a_connection_back_only_just_now_is_used_without_a_ping(
    engine: AsyncEngine, clock: FakeMonotonic
) -> None:
    first = await _session_id(engine)
    await _kill(engine, first)
    clock.now += pool_hooks.IDLE_PING_AFTER_S / 2
    with pytest.raises(DBAPIError):  # no ping: the dead connection fails this one use
        await _session_id(engine)
    assert await _session_id(engine) != first  # and is replaced for the next
