"""SQLAlchemy Core repositories of the worker's leases and cursors."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert

from adapters.mysql import tables as t
from adapters.mysql.product_repos import insert_unless_duplicate
from adapters.mysql.repositories import SqlRepo

_lease = t.worker_lease.c
_cursor = t.worker_cursor.c


class SqlWorkerLeases(SqlRepo):
    async def take(self, name: str, now: datetime, stale_before: datetime) -> str | None:
        token = secrets.token_hex(16)
        row = {"name": name, "holder": token, "claimed_at": now.replace(microsecond=0)}
        if self.locks_rows:
            # one statement that locks the row exclusively: insert-then-update would take a
            # shared lock on the duplicate first, and two such takers deadlock
            stmt = mysql_insert(t.worker_lease).values(row)
            stale = _lease.claimed_at < stale_before
            await self.conn.execute(
                stmt.on_duplicate_key_update(
                    holder=func.if_(stale, stmt.inserted.holder, _lease.holder),
                    claimed_at=func.if_(stale, stmt.inserted.claimed_at, _lease.claimed_at),
                )
            )
            held = select(_lease.holder).where(_lease.name == name)
            return token if (await self.conn.execute(held)).scalar() == token else None
        # SQLite serialises writers: a plain insert, else a conditional takeover
        if await insert_unless_duplicate(self, insert(t.worker_lease).values(row)):
            return token
        takeover = (
            update(t.worker_lease)
            .where(_lease.name == name, _lease.claimed_at < stale_before)
            .values(holder=token, claimed_at=row["claimed_at"])
        )
        return token if (await self.conn.execute(takeover)).rowcount == 1 else None

    async def renew(self, name: str, token: str, now: datetime) -> bool:
        # a match counts even when the stamp is unchanged (same second): SQLAlchemy's MySQL
        # drivers report the rows found, not only those changed
        query = (
            update(t.worker_lease)
            .where(_lease.name == name, _lease.holder == token)
            .values(claimed_at=now.replace(microsecond=0))
        )
        return bool((await self.conn.execute(query)).rowcount == 1)

    async def release(self, name: str, token: str) -> bool:
        query = delete(t.worker_lease).where(_lease.name == name, _lease.holder == token)
        return bool((await self.conn.execute(query)).rowcount == 1)


class SqlWorkerCursors(SqlRepo):
    async def get(self, name: str) -> int | None:
        query = select(_cursor.position).where(_cursor.name == name)
        value = (await self.conn.execute(query)).scalar()
        return None if value is None else int(value)

    async def advance(self, name: str, position: int) -> None:
        if position < 0:
            raise ValueError(f"cursor position must be ≥ 0, got {position}")
        row = {"name": name, "position": position}
        if await insert_unless_duplicate(self, insert(t.worker_cursor).values(row)):
            return
        await self.conn.execute(
            update(t.worker_cursor)
            .where(_cursor.name == name, _cursor.position < position)
            .values(position=position)
        )
