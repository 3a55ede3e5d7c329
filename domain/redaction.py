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


def is_secret(name: str) -> bool:
    """Whether a field of this name holds something never to be kept in plain text."""
    lowered = name.lower()
    return lowered in _SECRET_FIELDS or any(word in lowered for word in _SECRET_WORDS)


def redact(value: Any) -> Any:
    """The value with every secret-looking key's value replaced, at any depth."""
    if isinstance(value, Mapping):
        return {str(k): REDACTED if is_secret(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
