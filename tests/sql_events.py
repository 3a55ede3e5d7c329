"""Engine event hooks for tests, on every sync engine that runs an async engine's statements."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.mysql.engine import statement_engines


@contextmanager
def listening(engine: AsyncEngine, name: str, hook: Callable[..., Any]) -> Iterator[None]:
    """`hook` on the `name` event of `engine` and of its units of work's SQLite twin (a
    statement a unit of work runs on a SQLite file goes through the twin only)."""
    targets = statement_engines(engine)
    for target in targets:
        event.listen(target, name, hook)
    try:
        yield
    finally:
        for target in targets:
            event.remove(target, name, hook)


@contextmanager
def listening_pools(engine: AsyncEngine, name: str, hook: Callable[..., Any]) -> Iterator[None]:
    """`hook` on the `name` event of the pools of `engine` and of its twin."""
    pools = [target.pool for target in statement_engines(engine)]
    for pool in pools:
        event.listen(pool, name, hook)
    try:
        yield
    finally:
        for pool in pools:
            event.remove(pool, name, hook)
