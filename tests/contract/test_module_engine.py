"""On MariaDB a test runs on its module's engine (`engine_for`), and leaves no connection, so
no session state (a named lock here), to the next test."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from tests.contract import storage_backends
from tests.contract.storage_backends import Database, engine_for

database = storage_backends.database


def _pooled(engine: AsyncEngine) -> int:
    """The connections open in `engine`'s pool, not in use."""
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedin()


@storage_backends.only("mysql")
async def test_a_test_runs_on_the_module_engine_and_its_session_ends_with_it(
    database: Database,
) -> None:
    lock = f"{make_url(str(database.url)).database}.module_engine_test"
    async with engine_for(database) as engine:
        assert engine is database.engine
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": lock})).scalar()
        assert _pooled(engine) == 1  # back in the pool, its lock still held

    assert _pooled(engine) == 0
    async with engine_for(database) as engine, engine.connect() as conn:
        free = await conn.execute(text("SELECT IS_FREE_LOCK(:n)"), {"n": lock})
        assert free.scalar() == 1
