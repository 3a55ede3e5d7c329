"""EnumCode decodes stored codes to the same members however the driver hands them over."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import mysql, sqlite

from adapters.mysql.types import EnumCode
from domain.enums import DiskType, OsDistribution


@pytest.mark.parametrize("enum", [DiskType, OsDistribution])
def test_every_code_decodes_to_its_member_as_int_or_text(enum: type[DiskType]) -> None:
    code = EnumCode(enum)
    for member in enum:
        for value in (int(member), str(int(member))):
            decoded = code.process_result_value(value, sqlite.dialect())
            assert decoded is member and type(decoded) is enum
    assert code.process_result_value(None, mysql.dialect()) is None


def test_an_unknown_code_fails_to_decode() -> None:
    with pytest.raises(ValueError, match="not a valid DiskType"):
        EnumCode(DiskType).process_result_value(99, sqlite.dialect())


def test_the_member_table_is_not_part_of_the_cache_key() -> None:
    assert EnumCode(DiskType)._static_cache_key == (EnumCode, ("enum_class", DiskType))
