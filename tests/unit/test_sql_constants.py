"""`adapters.mysql.inline.const`: a constant in the SQL text, quoted as each dialect quotes."""

from __future__ import annotations

import pytest
from sqlalchemy import column, func, select, table
from sqlalchemy.dialects import mysql, sqlite

from adapters.mysql.inline import const

_T = table("t", column("m"))


def test_constants_are_written_into_the_text_and_bind_nothing() -> None:
    query = select(_T.c.m).where(func.instr(_T.c.m, const('{"a":')) > const(0))
    compiled = query.compile(dialect=sqlite.dialect())
    assert compiled.params == {}
    assert "instr(t.m, '{\"a\":') > 0" in str(compiled)


def test_a_backslash_is_written_as_each_dialect_reads_it() -> None:
    query = select(func.instr(_T.c.m, const("\\")))
    assert "instr(t.m, '\\')" in str(query.compile(dialect=sqlite.dialect()))
    assert "instr(t.m, '\\\\')" in str(query.compile(dialect=mysql.dialect()))


def test_a_quote_is_doubled() -> None:
    assert "'it''s'" in str(select(const("it's")).compile(dialect=sqlite.dialect()))


def test_statements_with_other_constants_have_other_cache_keys() -> None:
    one, two = select(const(1)), select(const(2))
    assert one._generate_cache_key() != two._generate_cache_key()
    assert one._generate_cache_key() == select(const(1))._generate_cache_key()


@pytest.mark.parametrize("value", [True, 1.5, None, b"x"])
def test_only_ints_and_strings_are_constants(value: object) -> None:
    with pytest.raises(TypeError):
        const(value)  # type: ignore[arg-type]


def test_a_percent_sign_is_refused() -> None:
    with pytest.raises(ValueError, match="%"):
        const("100%")
