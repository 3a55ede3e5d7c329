"""`adapters.mysql.compiled_cache`: a kept statement's compiled form is found without hashing
its cache key; every other statement as SQLAlchemy finds it; our engines use the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.util import LRUCache

from adapters.mysql import engine as lnvps_engine
from adapters.mysql.compiled_cache import StatementCache, keep

_metadata = MetaData()
_T = Table("t", _metadata, Column("id", Integer, primary_key=True), Column("name", String(20)))


@pytest.fixture
def engine() -> Engine:
    made = create_engine("sqlite://", execution_options={"compiled_cache": StatementCache()})
    _metadata.create_all(made)
    with made.begin() as conn:
        conn.execute(_T.insert(), [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    return made


class _Lookups:
    """Counts the lookups that reach SQLAlchemy's LRU cache (each hashes the whole key)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        lru_get = LRUCache.get

        def counted(cache: Any, key: Any, default: Any = None) -> Any:
            self.count += 1
            return lru_get(cache, key, default)

        monkeypatch.setattr(LRUCache, "get", counted)


def _by_id() -> Any:
    return select(_T.c.name).where(_T.c.id == bindparam("id"))


def test_a_kept_statement_is_found_without_a_hashed_lookup(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    statement = keep(_by_id())
    with engine.connect() as conn:
        assert conn.execute(statement, {"id": 1}).scalar() == "a"  # compiled, then stored
        lookups = _Lookups(monkeypatch)
        assert conn.execute(statement, {"id": 2}).scalar() == "b"
        assert conn.execute(statement, {"id": 1}).scalar() == "a"
    assert lookups.count == 0


def test_a_statement_not_kept_is_looked_up_as_sqlalchemy_does(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    statement = _by_id()
    with engine.connect() as conn:
        conn.execute(statement, {"id": 1})
        lookups = _Lookups(monkeypatch)
        assert conn.execute(statement, {"id": 2}).scalar() == "b"
        assert conn.execute(_by_id(), {"id": 1}).scalar() == "a"  # an equal one, built anew
    assert lookups.count == 2


def test_a_kept_statement_compiled_for_other_parameters_is_compiled_for_them(
    engine: Engine,
) -> None:
    """The parameters' names are part of the key (an INSERT's columns): another set of
    names is another compiled form, never the first one's."""
    insert = keep(_T.insert())
    with engine.begin() as conn:
        conn.execute(insert, {"id": 3, "name": "c"})
        conn.execute(insert, {"id": 4})  # no name: compiled without the column
        conn.execute(insert, {"id": 5, "name": "e"})
        rows = conn.execute(select(_T.c.id, _T.c.name).order_by(_T.c.id)).all()
    assert [tuple(row) for row in rows][2:] == [(3, "c"), (4, None), (5, "e")]


def test_statements_with_equal_keys_share_one_compiled_form_whichever_is_kept(
    engine: Engine,
) -> None:
    kept, other = keep(_by_id()), _by_id()
    with engine.connect() as conn:
        assert conn.execute(other, {"id": 1}).scalar() == "a"  # compiled for `other`
        assert conn.execute(kept, {"id": 2}).scalar() == "b"
        assert conn.execute(other, {"id": 2}).scalar() == "b"


def test_clearing_forgets_what_was_kept(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    statement = keep(_by_id())
    cache = engine.get_execution_options()["compiled_cache"]
    with engine.connect() as conn:
        conn.execute(statement, {"id": 1})
        cache.clear()
        lookups = _Lookups(monkeypatch)
        assert conn.execute(statement, {"id": 2}).scalar() == "b"
    assert lookups.count == 1 and len(cache) == 1


def test_our_engines_use_the_cache(tmp_path: Path) -> None:
    made = lnvps_engine.create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        engines = lnvps_engine.statement_engines(made)
        assert len(engines) == 2  # the async engine and its sync twin
        for sync in engines:
            assert isinstance(sync.get_execution_options()["compiled_cache"], StatementCache)
        caches = {id(sync.get_execution_options()["compiled_cache"]) for sync in engines}
        assert len(caches) == 2  # one each: they compile for different dialects
    finally:
        made.sync_engine.dispose()
    mysql = lnvps_engine.create_engine("mysql://u@127.0.0.1:1/db")
    assert isinstance(mysql.sync_engine.get_execution_options()["compiled_cache"], StatementCache)
