"""Lock timeouts and deadlocks of either database, raised as the storage port's StorageBusy."""

from __future__ import annotations

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.mysql.engine import statement_engines
from adapters.mysql.sqlite_inloop import WriterLockTimeout
from ports.storage import StorageBusy

#: MariaDB/MySQL: ER_LOCK_WAIT_TIMEOUT (`innodb_lock_wait_timeout` ran out; the statement
#: was undone) and ER_LOCK_DEADLOCK (this transaction was the victim and was rolled back)
MYSQL_BUSY_CODES = frozenset({1205, 1213})
#: SQLite's primary result code SQLITE_BUSY; its extended codes (BUSY_RECOVERY, _SNAPSHOT,
#: _TIMEOUT) share the low byte
SQLITE_BUSY = 5


def is_busy(context: ExceptionContext) -> bool:
    """Whether a failed statement or commit was refused for a lock and nothing else: a lost
    connection, a syntax error or a constraint stays SQLAlchemy's error (a 500 or its own
    handling)."""
    error = context.original_exception
    if context.dialect.name in ("mysql", "mariadb"):
        if not isinstance(context.sqlalchemy_exception, OperationalError):
            return False
        args: tuple[object, ...] = error.args
        return bool(args) and args[0] in MYSQL_BUSY_CODES
    if isinstance(error, WriterLockTimeout):  # this process's one writer held it too long
        return True
    if isinstance(error, sqlite3.OperationalError):
        code = getattr(error, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF == SQLITE_BUSY
    return False


def _as_storage_busy(context: ExceptionContext) -> StorageBusy | None:
    return StorageBusy() if is_busy(context) else None


def raise_busy_as_storage_busy(engine: AsyncEngine) -> None:
    """Make `engine` raise StorageBusy (cause: the driver's error) for a lock it gave up on.

    Installed by the unit-of-work factory, so the storage port reports a busy database the
    same way on every backend (the HTTP layer answers 503 with `Retry-After`, the worker
    tries the job again) without `app` knowing SQLAlchemy. Engines used only outside units
    of work (schema upgrade, legacy backfill) keep SQLAlchemy's errors. SQLAlchemy keeps the
    hook on the engine's dialect and calls it only for a failed statement or commit: a
    statement that succeeds costs nothing more. Installed on every engine that runs the
    units of work's statements (`statement_engines`). Idempotent.
    """
    for target in statement_engines(engine):
        if not event.contains(target, "handle_error", _as_storage_busy):
            event.listen(target, "handle_error", _as_storage_busy, retval=True)
