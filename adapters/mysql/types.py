"""Column types mapping LNVPS's MariaDB storage (schema.md §0) to Python values, also on SQLite."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import TypeCompiler
from sqlalchemy.types import TypeDecorator, TypeEngine

_E = TypeVar("_E", bound=IntEnum)

MYSQL_NAMES = ("mysql", "mariadb")


def is_mysql(dialect: Dialect) -> bool:
    """True for the MySQL and MariaDB dialects."""
    return dialect.name in MYSQL_NAMES


# --- integers -----------------------------------------------------------------------------
#: `INT(10) UNSIGNED` on MySQL, INTEGER elsewhere (SQLite rowid-compatible for primary keys).
UInt: TypeEngine[int] = Integer().with_variant(mysql.INTEGER(unsigned=True), *MYSQL_NAMES)
#: `BIGINT UNSIGNED` on MySQL, INTEGER (64-bit) on SQLite so it can be an autoincrement key.
UBigInt: TypeEngine[int] = (
    BigInteger()
    .with_variant(mysql.BIGINT(unsigned=True), *MYSQL_NAMES)
    .with_variant(Integer(), "sqlite")
)
#: `SMALLINT UNSIGNED` on MySQL.
USmallInt: TypeEngine[int] = SmallInteger().with_variant(
    mysql.SMALLINT(unsigned=True), *MYSQL_NAMES
)
#: `TINYINT UNSIGNED` on MySQL.
UTinyInt: TypeEngine[int] = SmallInteger().with_variant(mysql.TINYINT(unsigned=True), *MYSQL_NAMES)
#: `BINARY(32)` on MySQL (payment ids, pubkeys, hashes), BLOB on SQLite.
Binary32: TypeEngine[bytes] = LargeBinary().with_variant(mysql.BINARY(32), *MYSQL_NAMES)


class BitBool(TypeDecorator[bool]):
    """`BIT(1)` on MySQL/MariaDB ⇄ bool (decodes b'\\x00'/b'\\x01' and ints); BOOLEAN elsewhere.

    In SQL compare with `col == True` / `col == sa.true()` (or `col.is_(sa.true())`);
    `col.is_(True)` binds a parameter and MySQL rejects `IS ?`.
    """

    impl = Boolean
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if is_mysql(dialect):
            return dialect.type_descriptor(mysql.BIT(1))
        return dialect.type_descriptor(Boolean(create_constraint=False))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        flag = _to_bool(value)
        return int(flag) if is_mysql(dialect) else flag

    def process_result_value(self, value: Any, dialect: Dialect) -> bool | None:
        return None if value is None else _to_bool(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big") != 0
    return bool(value)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware-UTC datetime stored as naive UTC (`TIMESTAMP` on MySQL, or `DATETIME`).

    Naive input is refused. Values are truncated to whole seconds on every dialect, because
    the reference's TIMESTAMP columns hold seconds only (MariaDB truncates, MySQL 8 rounds);
    doing it here keeps SQLite and MariaDB behaving identically.
    """

    impl = DateTime
    cache_ok = True

    def __init__(self, *, datetime_column: bool = False) -> None:
        super().__init__(timezone=False)
        self.datetime_column = datetime_column

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if is_mysql(dialect) and not self.datetime_column:
            return dialect.type_descriptor(mysql.TIMESTAMP())
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UtcDateTime needs a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime refused (use an aware UTC datetime): {value!r}")
        return value.astimezone(UTC).replace(tzinfo=None, microsecond=0)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # e.g. SQLite CURRENT_TIMESTAMP text through raw SQL
            value = datetime.fromisoformat(value)
        if value.tzinfo is not None:
            return value.astimezone(UTC)  # type: ignore[no-any-return]
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]


class EnumCode(TypeDecorator[_E], Generic[_E]):
    """`SMALLINT UNSIGNED` integer code ⇄ an IntEnum member; an unknown code fails to decode."""

    impl = SmallInteger
    cache_ok = True

    def __init__(self, enum_class: type[_E]) -> None:
        super().__init__()
        self.enum_class = enum_class
        #: members by code, looked up per row value instead of `enum_class(code)` (a tenth
        #: of the cost; issue 10); not a constructor argument, so not part of the cache key
        self._members: dict[int, _E] = {int(member): member for member in enum_class}

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if is_mysql(dialect):
            return dialect.type_descriptor(mysql.SMALLINT(unsigned=True))
        return dialect.type_descriptor(SmallInteger())

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int(self.enum_class(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> _E | None:
        if value is None:
            return None
        member = self._members.get(value) if type(value) is int else None
        return member if member is not None else self.enum_class(int(value))

    def __repr__(self) -> str:
        return f"EnumCode({self.enum_class.__name__})"


class DecimalFloat(TypeDecorator[Decimal]):
    """A `FLOAT` column (rates, load factors) ⇄ Decimal, never a Python float in application code.

    MySQL `FLOAT` is a 32-bit float, which carries about 7 significant decimal digits and
    MariaDB prints it with 6. On read the driver's float is therefore rounded to
    `significant_digits` (default 6) significant digits and turned into
    `Decimal(str)`: 92000.0 → Decimal('92000'), 1.100000023841858 → Decimal('1.1'). SQLite
    stores a 64-bit double but is read through the same rounding, so both engines agree.
    Writes accept Decimal or int (a float is refused, D1) and are sent as a float.
    """

    impl = Float
    cache_ok = True

    def __init__(self, significant_digits: int = 6) -> None:
        super().__init__()
        self.significant_digits = significant_digits

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if is_mysql(dialect):
            return dialect.type_descriptor(mysql.FLOAT())
        return dialect.type_descriptor(Float())

    def process_bind_param(self, value: Any, dialect: Dialect) -> float | None:
        if value is None:
            return None
        if isinstance(value, float) or not isinstance(value, Decimal | int):
            raise TypeError(f"DecimalFloat needs Decimal or int, got {type(value).__name__}")
        return float(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return float_to_decimal(float(value), self.significant_digits)


def float_to_decimal(value: float, significant_digits: int = 6) -> Decimal:
    """Round a stored float to `significant_digits` significant digits as a plain Decimal."""
    result = Decimal(f"{value:.{significant_digits}g}")
    if result == result.to_integral_value():
        return result.quantize(Decimal(1))
    return result


class _JsonDDL(Text):
    """LONGTEXT that is spelled `JSON` in MySQL DDL (MariaDB: alias of LONGTEXT + JSON_VALID)."""

    __visit_name__ = "lnvps_json_text"


@compiles(_JsonDDL, "mysql")
@compiles(_JsonDDL, "mariadb")
def _compile_json_mysql(type_: _JsonDDL, compiler: TypeCompiler, **kw: Any) -> str:
    return "JSON"


@compiles(_JsonDDL)
def _compile_json_other(type_: _JsonDDL, compiler: TypeCompiler, **kw: Any) -> str:
    return "TEXT"


class JsonText(TypeDecorator[Any]):
    """A JSON column (stored as text) ⇄ a Python value; Python None is SQL NULL."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(_JsonDDL())

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bytes | bytearray):
            value = value.decode("utf-8")
        if isinstance(value, str):
            return json.loads(value)
        return value


class CommaList(TypeDecorator[tuple[str, ...]]):
    """A comma-separated VARCHAR ⇄ tuple[str, ...] (split on ',', trimmed, empty tokens ignored)."""

    impl = String
    cache_ok = True

    def __init__(self, length: int = 255) -> None:
        super().__init__(length)

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = (value,)
        return ",".join(str(v).strip() for v in value if str(v).strip())

    def process_result_value(self, value: Any, dialect: Dialect) -> tuple[str, ...] | None:
        if value is None:
            return None
        if value == "":  # most rows (no CPU features): no split, no generator
            return ()
        return tuple(token.strip() for token in str(value).split(",") if token.strip())
