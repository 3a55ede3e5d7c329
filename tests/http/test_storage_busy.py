"""An order that waits too long for a row or write lock answers 503 with `Retry-After`, and
leaves nothing behind: MariaDB's lock wait timeout, SQLite's busy timeout (another process's
write lock) and the in-process one-writer lock."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.uow import SqlUnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import TEST_KEY, Database
from tests.http.apiapp import ApiClient, api_client
from tests.http.vm_helpers import add_key, build, user_of
from tests.nostr_signing import NostrKey

database = storage_backends.database
SQL = pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)], indirect=True
)
BOB = NostrKey.from_seed(41)
#: MariaDB's shortest `innodb_lock_wait_timeout` (whole seconds), SQLite's busy timeout here
MYSQL_LOCK_WAIT_S = 1
SQLITE_BUSY_S = 0.2


def _short_lock_waits(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {MYSQL_LOCK_WAIT_S}")
    finally:
        cursor.close()


@pytest.fixture
async def engine(database: Database) -> AsyncIterator[AsyncEngine]:
    """The module's (emptied) database, with lock waits that end within a second."""
    assert database.url is not None
    if database.kind == "sqlite":
        made = create_engine(database.url, connect_args={"timeout": SQLITE_BUSY_S})
    else:
        made = create_engine(database.url)
        event.listen(made.sync_engine, "connect", _short_lock_waits)
    try:
        async with made.begin() as conn:
            for table in reversed(tables.metadata.sorted_tables):
                await conn.execute(delete(table))
        yield made
    finally:
        await made.dispose()


@pytest.fixture
async def c(engine: AsyncEngine) -> AsyncIterator[ApiClient]:
    api = build(store=SqlUnitOfWorkFactory(engine, AesGcmSecretBox(TEST_KEY)))
    async with api_client(api) as client:
        yield client


async def _rows(engine: AsyncEngine) -> tuple[int, int, int]:
    """How many VMs, subscriptions and line items are stored."""
    async with engine.connect() as conn:
        counts = [
            len((await conn.execute(select(table.c.id))).all())
            for table in (tables.vm, tables.subscription, tables.subscription_line_item)
        ]
    return counts[0], counts[1], counts[2]


async def _order(c: ApiClient, ssh_key_id: int) -> Any:
    body = {"template_id": c.demo.tiny, "image_id": c.demo.ubuntu, "ssh_key_id": ssh_key_id}
    return await c.call("POST", "/api/v1/vm", key=BOB, json=body)


async def _refused_as_busy(resp: Any) -> None:
    assert resp.status == 503, await resp.text()
    assert resp.headers["Retry-After"] == "1"
    assert await resp.json() == {"error": "The service is busy; please retry"}


@SQL
async def test_an_order_waiting_past_the_lock_timeout_is_a_503_and_changes_nothing(
    c: ApiClient, engine: AsyncEngine, database: Database
) -> None:
    """Another transaction holds the buyer's row (MariaDB) or the database write lock
    (SQLite, from another process): the order gives up after the lock timeout."""
    key = await add_key(c.api, BOB)
    user = await user_of(c.api, BOB)
    before = await _rows(engine)
    if database.kind == "sqlite":
        assert database.url is not None
        path = make_url(database.url).database
        assert path is not None
        other_process = sqlite3.connect(path, isolation_level=None)
        other_process.execute("BEGIN IMMEDIATE")
        try:
            resp = await _order(c, key.id)
        finally:
            other_process.execute("ROLLBACK")
            other_process.close()
    else:
        async with engine.connect() as holder:
            await holder.execute(
                text("SELECT id FROM users WHERE id = :id FOR UPDATE"), {"id": user.id}
            )
            resp = await _order(c, key.id)
            await holder.rollback()
    await _refused_as_busy(resp)
    assert await _rows(engine) == before
    retried = await _order(c, key.id)  # the lock is gone: the same request goes through
    assert retried.status == 200, await retried.text()
    assert (await _rows(engine))[0] == before[0] + 1


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_an_order_waiting_past_the_one_writer_lock_is_a_503_and_changes_nothing(
    c: ApiClient, engine: AsyncEngine
) -> None:
    """A write transaction of this process holds SQLite's one-writer lock (`sqlite_inloop`)."""
    key = await add_key(c.api, BOB)
    before = await _rows(engine)
    async with engine.connect() as holder:
        await holder.execute(text("UPDATE users SET created = created"))
        resp = await _order(c, key.id)
        await holder.rollback()
    await _refused_as_busy(resp)
    assert await _rows(engine) == before
    retried = await _order(c, key.id)
    assert retried.status == 200, await retried.text()
