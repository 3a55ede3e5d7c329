"""The config file's keys this server does not know: each one is warned about at start."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs


def unknown_keys(raw: Mapping[str, Any], cls: type, prefix: str = "") -> list[str]:
    """The keys of `raw` (snake_case, as structured) that are no field of the attrs class
    `cls`, by their kebab-case path (`lightning.lnd`), recursing into sections that are
    attrs classes themselves. Maps of free keys (`tax-rate`, `rates.fixed`, host client
    options) are not judged.

    The file may hold the reference's keys we do not use, so an unknown key is not an error;
    but a misspelt one (`pubic-url`) silently leaves its setting at the default, which the
    operator must hear about."""
    hints = typing.get_type_hints(cls)
    found: list[str] = []
    for key, value in raw.items():
        path = f"{prefix}{key.replace('_', '-')}"
        if key not in attrs.fields_dict(cls):
            found.append(path)
            continue
        section = _attrs_class(hints[key])
        if section is not None and isinstance(value, Mapping):
            found.extend(unknown_keys(value, section, f"{path}."))
    return found


def _attrs_class(hint: Any) -> type | None:
    """The attrs class a field holds (`X` or `X | None`), else None."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = options[0] if len(options) == 1 else None
    return hint if isinstance(hint, type) and attrs.has(hint) else None
