"""A deadlock victim is StorageBusy; the database's other failures stay SQLAlchemy's errors."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from domain.model import User
from ports.storage import StorageBusy, UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import Backend, at

database = storage_backends.database
backend = storage_backends.backend
SQL = pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)], indirect=True
)
MYSQL = pytest.mark.parametrize(
    "database", [pytest.param("mysql", marks=pytest.mark.mysql)], indirect=True
)


async def _two_users(factory: UnitOfWorkFactory) -> tuple[int, int]:
    async with factory() as uow:
        first = await uow.users.add(User(id=0, pubkey=b"\x01" * 32, created=at(1)))
        second = await uow.users.add(User(id=0, pubkey=b"\x02" * 32, created=at(1)))
        await uow.commit()
    return first.id, second.id


@MYSQL
async def test_the_victim_of_a_deadlock_gets_storage_busy_and_the_other_goes_on(
    backend: Backend,
) -> None:
    """Two units of work lock two users' rows in opposite orders: InnoDB rolls one back
    (1213) at once, and that one is StorageBusy; the other gets its second lock."""
    one, two = await _two_users(backend.factory)
    async with backend.factory() as a, backend.factory() as b:
        await a.users.lock(one)
        await b.users.lock(two)
        outcomes = await asyncio.gather(
            a.users.lock(two), b.users.lock(one), return_exceptions=True
        )
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 1, outcomes
    (busy,) = failures
    assert isinstance(busy, StorageBusy) and busy.transient
    assert busy.message == "The service is busy; please retry"
    assert isinstance(busy.__cause__, Exception) and busy.__cause__.args[0] == 1213


@SQL
async def test_other_database_errors_are_not_storage_busy(backend: Backend) -> None:
    """An unknown table (SQLite answers it with an OperationalError too) is no busy database."""
    assert backend.engine is not None
    async with backend.engine.connect() as conn:
        with pytest.raises(DBAPIError) as raised:
            await conn.execute(text("SELECT * FROM no_such_table"))
    assert not isinstance(raised.value, StorageBusy)


@MYSQL
async def test_a_lost_connection_is_not_storage_busy(backend: Backend) -> None:
    """A connection the server killed fails with SQLAlchemy's OperationalError, as before."""
    assert backend.engine is not None
    async with backend.engine.connect() as victim, backend.engine.connect() as killer:
        own_id = (await victim.execute(text("SELECT CONNECTION_ID()"))).scalar_one()
        await killer.execute(text(f"KILL {int(own_id)}"))
        with pytest.raises(OperationalError):
            await victim.execute(text("SELECT 1"))
