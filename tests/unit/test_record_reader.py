"""Part.read builds each record by its generated reader exactly as `Mapper.from_values` does."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.mysql.mapping import Mapper, Part
from adapters.mysql.uow import Mappers
from domain.unreadable import Unreadable

BOX = AesGcmSecretBox(bytes(range(32)))
LOST = AesGcmSecretBox(bytes(reversed(range(32))))
MAPPERS = {name: m for name, m in vars(Mappers(BOX)).items() if isinstance(m, Mapper)}


def _row(mapper: Mapper[Any], at: int, secret: str | None) -> list[Any]:
    values: list[Any] = ["before"] * at
    for i, column in enumerate(mapper.columns):
        if column.name == "id":
            values.append(7)
        elif column.name in mapper.encrypted:
            values.append(secret)
        else:
            values.append(f"{column.name}-{i}")
    return [*values, "after"]


@pytest.mark.parametrize("name", sorted(MAPPERS))
@pytest.mark.parametrize("kind", ["sealed", "plain", "lost key", "junk", "none"])
def test_the_generated_reader_builds_what_from_values_builds(name: str, kind: str) -> None:
    secret = {
        "sealed": BOX.encrypt("sealed text"),
        "plain": "plain text",
        "lost key": LOST.encrypt("lost key"),
        "junk": "ENC:junk",
        "none": None,
    }[kind]
    mapper = MAPPERS[name]
    part = Part(mapper, 2)
    row = _row(mapper, 2, secret)
    expected = mapper.from_values(dict(zip(part.names, row[2 : part.end], strict=True)))
    assert part.read(row) == expected
    for column in mapper.encrypted:  # the secrets opened as `from_values` opens them
        opened = getattr(expected, column)
        if secret is None or not secret.startswith("ENC:"):
            assert opened == secret
        elif secret == row[part.start + part.names.index(column)] and "junk" not in secret:
            assert opened == "sealed text" or isinstance(opened, Unreadable)
        else:
            assert isinstance(opened, Unreadable)
    row[part.id_at] = None  # an outer join that found nothing
    assert part.read(row) is None


def test_a_record_is_read_without_a_dict_of_its_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot reads' mapping (issue 10): no `from_values` round through a dict per record."""
    mapper = MAPPERS["vm"]
    part = Part(mapper, 0)

    def refused(self: Mapper[Any], values: dict[str, Any]) -> Any:
        raise AssertionError("read through from_values")

    monkeypatch.setattr(Mapper, "from_values", refused)
    assert part.read(_row(mapper, 0, None)) is not None
