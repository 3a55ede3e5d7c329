"""Connection-pool hooks: ping a pooled connection only after it sat idle, and no ROLLBACK
on return when a COMMIT already ended its transaction (a round trip each, per request)."""

from __future__ import annotations

from time import monotonic
from typing import Any
from weakref import WeakSet

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolResetState

#: a connection back in the pool for less than this is taken as alive without a ping: under
#: load connections come back every few milliseconds, and what breaks them (a server restart,
#: a network cut, `wait_timeout`) is noticed on first use and invalidates the pool anyway
IDLE_PING_AFTER_S = 5.0
_CHECKED_IN_AT = "lnvps_checked_in_at"
_COMMITTED = "lnvps_committed"
_HOOKED: WeakSet[Engine] = WeakSet()


def install_pool_hooks(
    engine: AsyncEngine, *, idle_ping_after_s: float = IDLE_PING_AFTER_S
) -> None:
    """Hook `engine`'s pool; the engine must be made with `pool_reset_on_return=None` and
    without `pool_pre_ping` (these hooks do both jobs, only when needed)."""
    dialect = engine.dialect

    def checkin(dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = monotonic()

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get(_CHECKED_IN_AT)
        if since is None or monotonic() - since < idle_ping_after_s:
            return  # new, or back in the pool only just now
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as err:
            # as SQLAlchemy's own pre-ping: a dead connection suggests a restarted server,
            # so every connection pooled before now is replaced, this one first
            raise InvalidatePoolError("pooled connection failed its ping") from err

    def reset(dbapi_connection: Any, record: Any, state: PoolResetState) -> None:
        committed = record.info.pop(_COMMITTED, False)
        if state.terminate_only or not state.asyncio_safe:
            return  # being discarded, or no I/O allowed here: as the pool's own reset
        if state.transaction_was_reset or committed:
            return  # the Connection already rolled back, or a COMMIT ended the transaction
        dbapi_connection.rollback()

    event.listen(engine.sync_engine, "checkin", checkin)
    event.listen(engine.sync_engine, "checkout", checkout)
    event.listen(engine.sync_engine, "reset", reset)
    _HOOKED.add(engine.sync_engine)


def mark_committed(connection: object) -> None:
    """Note that `connection`'s transaction just ended with a COMMIT, so returning it to the
    pool needs no ROLLBACK. Cleared on return; a statement run after this and before the
    return opens a new transaction that the Connection itself rolls back. (SQL sent on the
    raw driver connection after the COMMIT would not be rolled back on return: nothing does
    that on MariaDB; the one raw-driver read, the SQLite status read, is not hooked.) A no-op on an
    engine without these hooks or any other connection (SQLite: its ROLLBACK is no round trip)."""
    if not isinstance(connection, AsyncConnection) or connection.sync_engine not in _HOOKED:
        return
    connection.sync_connection.connection.info[_COMMITTED] = True  # type: ignore[union-attr]
