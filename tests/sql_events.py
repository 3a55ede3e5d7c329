"""Engine event hooks for tests, on every sync engine that runs an async engine's statements."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.mysql.engine import statement_engines


@contextmanager
def listening(
    engine: AsyncEngine, name: str, hook: Callable[..., Any], *, pools: bool = False
) -> Iterator[None]:
    """`hook` on the `name` event of `engine` and of its units of work's SQLite twin (a
    statement a unit of work runs on a SQLite file goes through the twin only); with
    `pools`, on their pools' event instead."""
    engines = statement_engines(engine)
    targets: list[Any] = [e.pool for e in engines] if pools else list(engines)
    for target in targets:
        event.listen(target, name, hook)
    try:
        yield
    finally:
        for target in targets:
            event.remove(target, name, hook)
