"""Shared fixtures (`sqlite_url`, `mysql_url`, `db_url`: both engines, `migrated_db_url`) and the
suite's Hypothesis settings."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.dbtest import (
    MYSQL_HEAD,
    SqliteTemplate,
    create_mysql_database,
    drop_mysql_database,
    sqlite_url_for,
)

ENGINES = ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)]

#: every property test runs without Hypothesis's per-example deadline (200 ms): an example
#: slowed by a loaded machine (two pytest workers, MariaDB, other jobs) is not a failure, and
#: the deadline failed such runs at random. Loaded here, before any test module builds its
#: own `settings(...)`, which inherit it.
settings.register_profile("lnvps", deadline=None)
settings.load_profile("lnvps")


def pytest_configure(config: pytest.Config) -> None:
    """`LNVPS_SNAPSHOT_LOG=path`: log MariaDB transactions that read from a snapshot older
    than a lock they took (`tests/snapshot_reads.py`) to `path.<worker>.jsonl`."""
    base = os.environ.get("LNVPS_SNAPSHOT_LOG")
    if base:
        from tests.snapshot_reads import Detector, log_path

        Detector.to_file(log_path(base)).install()


#: the test files that take longest (a process per server, a Schemathesis run): run first
SLOW_FILES = ("tests/e2e/", "tests/http/test_schemathesis")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use `mysql_url` directly carry the `mysql` marker; the slowest files come
    first (each file in its own order), so that the run ends on many short files that
    pytest-xdist shares out evenly, not on one long file a single worker is left with
    (`scripts/test` keeps this order: `--no-loadscope-reorder`)."""
    for item in items:
        if "mysql_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mysql)
    items.sort(key=lambda item: not item.nodeid.startswith(SLOW_FILES))


def pytest_collection_finish() -> None:
    """Freeze what collection left alive, and collect the oldest generation less often.

    A full collection walks every tracked object: after collection (the app, SQLAlchemy,
    Hypothesis, Schemathesis and every test module imported) each took ~0.25 s, and a
    worker ran dozens, ~20 % of its CPU. Frozen objects are never walked again (nor freed,
    but they live for the run anyway); the garbage the tests make is still collected, the
    whole heap of it every 100 younger collections instead of 10."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish() -> None:
    """Collect the garbage while this process still may, then freeze what is left.

    pytest's own last full collection otherwise walks every object a worker holds (millions
    after a whole run) after the worker has told pytest-xdist it is done, and xdist interrupts
    it a few seconds later: the `KeyboardInterrupt` lands in whatever weakref callback runs
    then (a `PytestUnraisableExceptionWarning` at the end of the run). Collecting here first
    still reports a finaliser's error; frozen objects are not walked again."""
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def _drop_mysql_head() -> Iterator[None]:
    """This process's migrated MariaDB template (`MYSQL_HEAD`) is dropped at its end."""
    yield
    asyncio.run(MYSQL_HEAD.drop())


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    return SqliteTemplate(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh, empty SQLite file in tmp_path."""
    return sqlite_url_for(tmp_path / "lnvps.db")


@pytest.fixture
async def mysql_url() -> AsyncIterator[str]:
    """URL of a fresh, empty `lnvps_t_<random>` database, dropped afterwards.

    Skips when the server at LNVPS_TEST_MYSQL_URL is unreachable (fails if LNVPS_REQUIRE_MYSQL=1).
    """
    name, url = await create_mysql_database()
    try:
        yield url
    finally:
        await drop_mysql_database(name)


@pytest.fixture(params=ENGINES)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database, once on SQLite and once on MariaDB."""
    if request.param == "sqlite":
        yield sqlite_url_for(tmp_path / "lnvps-empty.db")
        return
    name, url = await create_mysql_database()
    try:
        yield url
    finally:
        await drop_mysql_database(name)


@pytest.fixture(params=ENGINES)
async def migrated_db_url(
    request: pytest.FixtureRequest, tmp_path: Path, _sqlite_template: SqliteTemplate
) -> AsyncIterator[str]:
    """A database upgraded to head (seed rows included), once on SQLite and once on MariaDB."""
    if request.param == "sqlite":
        yield await _sqlite_template.copy_to(tmp_path / "lnvps-migrated.db")
        return
    name, url = await MYSQL_HEAD.copy()
    try:
        yield url
    finally:
        await drop_mysql_database(name)
