"""`redact`: secrets masked at any depth it keeps, and a bounded depth whatever the input."""

from __future__ import annotations

from typing import Any

from domain.redaction import ELIDED, MAX_DEPTH, REDACTED, redact


def _nested(levels: int, inner: Any) -> Any:
    """`inner` inside `levels` objects and arrays, alternately (built without recursion)."""
    value = inner
    for i in range(levels):
        value = {"a": value, "token": "t"} if i % 2 else [value]
    return value


def test_secrets_are_masked_down_to_the_depth_kept() -> None:
    value = _nested(MAX_DEPTH, 1)
    walked, levels = redact(value), 0
    while isinstance(walked, dict | list):
        levels += 1
        if isinstance(walked, dict):
            assert walked["token"] == REDACTED
            walked = walked["a"]
        else:
            walked = walked[0]
    assert (levels, walked) == (MAX_DEPTH, 1)


def test_anything_deeper_is_elided_without_exhausting_the_stack() -> None:
    """Found by r12: `redact` recursed once a level (two frames), so a body nested ~700 deep,
    which `json.loads` takes, raised RecursionError in the admin audit."""
    value = _nested(50_000, 1)
    walked, levels = redact(value), 0
    while isinstance(walked, dict | list):
        levels += 1
        walked = walked["a"] if isinstance(walked, dict) else walked[0]
    assert (levels, walked) == (MAX_DEPTH, ELIDED)
    assert redact({"a": [1, {"b": 2}], "password": "p"}) == {
        "a": [1, {"b": 2}],
        "password": REDACTED,
    }
