"""Constants written into a statement's SQL text instead of sent as bound parameters.

SQLAlchemy turns every Python value in an expression into a bound parameter. A prebuilt
statement's own constants (the numbers and strings of the metadata text test, `deleted =
false`) then cost on every execution: each is looked up among the statement's extracted
values, run through its type's processor and put in the driver's parameter list. On the
renewal's pricing reads they were 38 of 46 parameters (issue 10). Written into the text,
they cost nothing after the statement's first compilation.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal


class SqlConstant(ColumnElement[Any]):
    """An `int` or `str` written into the SQL text, quoted and escaped as the dialect writes
    string literals (MariaDB escapes a backslash, SQLite does not). On MariaDB whether a
    backslash escapes is read from the server's `sql_mode` (NO_BACKSLASH_ESCAPES) when the
    engine first connects; a change of the global `sql_mode` afterwards needs a restart."""

    inherit_cache = True
    #: the value is part of the statement's cache key (SQLAlchemy reads it from this list)
    _traverse_internals = [("value", InternalTraversal.dp_plain_obj)]  # noqa: RUF012

    def __init__(self, value: int | str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(f"an int or a str, not {type(value).__name__}")
        if isinstance(value, str) and "%" in value:  # a `format` paramstyle reads `%` itself
            raise ValueError("a constant with % is sent as a parameter instead")
        self.value = value
        self.type = Integer() if isinstance(value, int) else String()


@compiles(SqlConstant)
def _render(element: SqlConstant, compiler: Any, **kw: Any) -> str:
    rendered: str = compiler.render_literal_value(element.value, element.type)
    return rendered


def const(value: int | str) -> SqlConstant:
    """`value` written into the SQL text (see the module docstring)."""
    return SqlConstant(value)


#: a BIT(1) or boolean column's false (`deleted = 0`), as the columns' own type binds it
FALSE = const(0)
