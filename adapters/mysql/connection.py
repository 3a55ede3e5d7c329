"""What repositories need of a connection: SQLAlchemy's `AsyncConnection` or a `LoopConnection`."""

from __future__ import annotations

from typing import Any, Protocol, TypeVarTuple, overload

from sqlalchemy import Dialect
from sqlalchemy.engine import CursorResult
from sqlalchemy.sql import Executable
from sqlalchemy.sql.selectable import TypedReturnsRows

Ts = TypeVarTuple("Ts")


class SqlConnection(Protocol):
    """A connection in a transaction begun by its first statement (SQLAlchemy's autobegin)."""

    @property
    def dialect(self) -> Dialect: ...

    @overload
    async def execute(
        self, statement: TypedReturnsRows[*Ts], parameters: Any = None
    ) -> CursorResult[*Ts]: ...

    @overload
    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[*tuple[Any, ...]]: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    async def close(self) -> None: ...
