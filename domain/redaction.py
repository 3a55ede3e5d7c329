"""Which request fields are secrets, and a value with every secret field's value masked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: field names that say they hold a secret (payment-provider secrets, tokens, NWC strings)
_SECRET_WORDS = ("secret", "token", "password", "macaroon", "nwc", "private")
#: fields named for what they hold, not as a secret, whose columns are stored encrypted
#: (D28): a host's SSH private key, a user's e-mail address, an SSH key's text
_SECRET_FIELDS = frozenset({"ssh_key", "email", "key_data"})
REDACTED = "***"
#: `redact` keeps this many levels of objects and arrays; anything deeper becomes `ELIDED`,
#: so a deeply nested request body cannot exhaust the interpreter's stack
MAX_DEPTH = 32
ELIDED = "…"


def is_secret(name: str) -> bool:
    """Whether a field of this name holds something never to be kept in plain text."""
    lowered = name.lower()
    return lowered in _SECRET_FIELDS or any(word in lowered for word in _SECRET_WORDS)


def redact(value: Any) -> Any:
    """The value with every secret-looking key's value replaced, at any depth; an object or
    array nested deeper than `MAX_DEPTH` levels is replaced by `ELIDED`."""
    return _redact(value, MAX_DEPTH)


def _redact(value: Any, levels: int) -> Any:
    if isinstance(value, Mapping | list) and levels <= 0:
        return ELIDED
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if is_secret(str(k)) else _redact(v, levels - 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v, levels - 1) for v in value]
    return value
