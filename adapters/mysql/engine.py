"""Database URLs and async engines: MariaDB/MySQL via asyncmy (UTC sessions), SQLite in the loop."""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool, StaticPool

from adapters.mysql.compiled_cache import StatementCache
from adapters.mysql.pool_hooks import install_pool_hooks
from adapters.mysql.sqlite_inloop import SqliteConnector
from adapters.mysql.sqlite_loop import POOL_TIMEOUT_S, LoopEngine

MYSQL_DRIVER = "mysql+asyncmy"
SQLITE_DRIVER = "sqlite+aiosqlite"
_ASYNC_MYSQL_DRIVERS = ("asyncmy", "aiomysql")
#: MariaDB pool: the API's requests and the worker's jobs share one process (`serve --mode all`);
#: 40 connections cover 32 concurrent requests at one statement each and the worker, the rest
#: queue (issue 10). No overflow: overflow connections are closed whenever the pool is full on
#: their return and opened again on the next burst (a connect, authentication and session
#: set-up each time: dozens a second under steady load), so every connection stays open.
MYSQL_POOL_SIZE = 40
MYSQL_MAX_OVERFLOW = 0
#: SQLite pool, as large as MariaDB's: a connection is a file handle, and a request that waits
#: for a pooled connection can be overtaken again and again by newer ones (the pool's queue
#: hands a returned connection to whoever asks first): with the default 5 + 10 and 32
#: concurrent writers, a few requests waited 2-8 s while the rest took 22 ms (issue 10).
SQLITE_POOL_SIZE = MYSQL_POOL_SIZE
SQLITE_MAX_OVERFLOW = MYSQL_MAX_OVERFLOW
#: SQLite waits this long for another process's write lock, retrying in the loop (see
#: sqlite_inloop); in-process writers wait for each other (one writer) as long at most.
SQLITE_BUSY_TIMEOUT_S = 30.0
#: each SQLite file engine's sync twin for units of work (`sqlite_loop`), by its sync engine
_LOOP_ENGINES: WeakKeyDictionary[Engine, LoopEngine] = WeakKeyDictionary()


def normalize_db_url(text: str | URL) -> URL:
    """Turn a configured database location into an async SQLAlchemy URL.

    Accepts SQLAlchemy URLs, the reference's `mysql://user:pass@host:port/db` (→ asyncmy with
    `charset=utf8mb4`), `mariadb://…`, `sqlite:///path` and a plain file path (→ aiosqlite).
    """
    if isinstance(text, URL):
        url = text
    else:
        raw = text.strip()
        if not raw:
            raise ValueError("empty database URL")
        if "://" not in raw:
            return make_url(f"{SQLITE_DRIVER}:///{raw}")
        url = make_url(raw)
    backend = url.get_backend_name()
    driver = url.get_driver_name()
    if backend in ("mysql", "mariadb"):
        if driver not in _ASYNC_MYSQL_DRIVERS:
            url = url.set(drivername=MYSQL_DRIVER)
        else:
            url = url.set(drivername=f"mysql+{driver}")
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        return url
    if backend == "sqlite":
        return url.set(drivername=SQLITE_DRIVER)
    raise ValueError(f"unsupported database URL scheme: {url.drivername}")


def url_is_mysql(url: str | URL) -> bool:
    """True when the URL points at MariaDB/MySQL."""
    return normalize_db_url(url).get_backend_name() in ("mysql", "mariadb")


def create_engine(
    url: str | URL, *, foreign_keys: bool = True, echo: bool = False, **kwargs: Any
) -> AsyncEngine:
    """Create an AsyncEngine for `url` (normalised first).

    MariaDB/MySQL: every new connection runs `SET time_zone='+00:00'` (so `NOW()` and TIMESTAMP
    columns are UTC, as in the reference); a connection idle for a few seconds is pinged
    before use and recycling keeps pooled connections healthy, and one returned after a COMMIT
    is not rolled back again (`pool_hooks`); the pool (40, no overflow) serves the API and
    the worker of one process.
    SQLite: `sqlite3` called in the event loop (`sqlite_inloop`: one writer at a time, no
    thread per statement; `sqlite_driver="aiosqlite"` keeps the threaded driver); a file
    database also gets a sync twin for units of work (`loop_engine_of`),
    `PRAGMA foreign_keys=ON` (OFF when `foreign_keys=False`, which schema migrations need
    while they rebuild tables), WAL journal with `synchronous=NORMAL` and a 30 s busy timeout.
    """
    url = normalize_db_url(url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, foreign_keys=foreign_keys, echo=echo, **kwargs)
    options: dict[str, Any] = {
        "pool_size": MYSQL_POOL_SIZE,
        "max_overflow": MYSQL_MAX_OVERFLOW,
        "pool_recycle": 1800,
        # the pool hooks ping idle connections and skip the ROLLBACK after a COMMIT
        "pool_pre_ping": False,
        "pool_reset_on_return": None,
        "echo": echo,
        "execution_options": {"compiled_cache": StatementCache()},
    }
    options.update(kwargs)
    engine = create_async_engine(url, **options)
    event.listen(engine.sync_engine, "connect", _mysql_on_connect)
    install_pool_hooks(engine)
    return engine


def _mysql_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET time_zone = '+00:00'")
    finally:
        cursor.close()


def _sqlite_engine(
    url: URL, *, foreign_keys: bool, echo: bool, sqlite_driver: str = "inloop", **kwargs: Any
) -> AsyncEngine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in str(url)
    options: dict[str, Any] = {
        "echo": echo,
        "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S},
        "execution_options": {"compiled_cache": StatementCache()},
    }
    if in_memory:
        options["poolclass"] = StaticPool
    else:
        options.update(pool_size=SQLITE_POOL_SIZE, max_overflow=SQLITE_MAX_OVERFLOW)
    options.update(kwargs)
    connector = None
    if sqlite_driver == "inloop":
        args, connect_kwargs = SQLiteDialect_pysqlite().create_connect_args(url)
        connect_kwargs.update(options.pop("connect_args"))
        connector = SqliteConnector(*args, checkpoints=not in_memory, **connect_kwargs)
        options["async_creator"] = connector.async_connect
    elif sqlite_driver != "aiosqlite":
        raise ValueError(f"unknown SQLite driver {sqlite_driver!r}")
    engine = create_async_engine(url, **options)
    pragma = "ON" if foreign_keys else "OFF"

    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA foreign_keys={pragma}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    event.listen(engine.sync_engine, "connect", on_connect)
    if connector is not None and not in_memory:
        _add_loop_engine(engine, url, connector, on_connect, options)
    return engine


def _add_loop_engine(
    engine: AsyncEngine,
    url: URL,
    connector: SqliteConnector,
    on_connect: Any,
    options: dict[str, Any],
) -> None:
    """The sync twin of a SQLite file engine: the same file, connector (so the same writer
    lock and checkpoints), pool size and connection set-up; disposed with it."""
    pool_size = int(options.get("pool_size", SQLITE_POOL_SIZE))
    twin = create_sync_engine(
        url.set(drivername="sqlite+pysqlite"),
        creator=connector.connect,
        poolclass=QueuePool,
        pool_size=pool_size,
        max_overflow=0,
        # the connection returned last is taken next: units of work that run one after the
        # other keep one connection and its page cache, which SQLite empties when another
        # connection has written since (first in, first out cycled through every connection,
        # so each transaction read its pages again: ~7 reads a renewal, issue 10)
        pool_use_lifo=True,
        echo=options.get("echo", False),
        execution_options={"compiled_cache": StatementCache()},
    )
    event.listen(twin, "connect", on_connect)
    pool_timeout = float(options.get("pool_timeout", POOL_TIMEOUT_S))
    loop = LoopEngine(twin, connector.writer, pool_size, pool_timeout)
    _LOOP_ENGINES[engine.sync_engine] = loop
    event.listen(engine.sync_engine, "engine_disposed", lambda _: twin.dispose())


def loop_engine_of(engine: AsyncEngine) -> LoopEngine | None:
    """The sync twin units of work use for `engine` (a SQLite file on the in-loop driver),
    or None: they use `engine` itself (MariaDB, an in-memory database, aiosqlite)."""
    return _LOOP_ENGINES.get(engine.sync_engine)


def statement_engines(engine: AsyncEngine) -> list[Engine]:
    """The sync engines that run statements for `engine`: its own and, where it has one, its
    units of work's twin (where an event hook that must see every statement goes)."""
    loop = loop_engine_of(engine)
    return [engine.sync_engine] + ([loop.sync_engine] if loop is not None else [])


def dialect_is_mysql(bind: AsyncEngine | AsyncConnection | Engine | Connection) -> bool:
    """True when the engine/connection talks to MariaDB or MySQL."""
    return bind.dialect.name in ("mysql", "mariadb")
