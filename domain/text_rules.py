"""Forms of free-text input: bounded single-line text and DNS host names (RFC 1035/1123)."""

from __future__ import annotations

import re
import unicodedata

from domain.errors import InvalidInput

#: control characters, lone surrogates and the Unicode line/paragraph separators: a value
#: holding one can break a log line, an `authorized_keys` file or a mail header.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
#: RFC 1035 §2.3.4: 253 characters of text (255 octets on the wire), labels of 1..63.
HOST_NAME_MAX = 253
_LINE_BREAKS = str.maketrans("\t\r\n", "   ")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def is_single_line(text: str) -> bool:
    """No control character (tab and newline included), surrogate or line separator."""
    if text.isprintable():  # one C-level scan: printable text has none of those categories
        return True
    return not any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in text)


def check_line(text: str, field: str, limit: int, *, multiline: bool = False) -> str:
    """`text` unchanged when it is one line (or, `multiline`, lines: tab, CR and LF allowed)
    of at most `limit` characters without other control characters; else InvalidInput."""
    if len(text) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters")
    plain = text.translate(_LINE_BREAKS) if multiline else text
    if not is_single_line(plain):
        raise InvalidInput(f"{field} must be text without control characters")
    return text


def is_host_name(name: str) -> bool:
    """An RFC 1123 host name: dot-separated letter-digit-hyphen labels of 1..63 characters, not
    starting or ending with a hyphen, at most 253 characters; one trailing dot (FQDN) allowed."""
    bare = name[:-1] if name.endswith(".") else name
    if not bare or len(bare) > HOST_NAME_MAX or not bare.isascii():
        return False
    return all(_LABEL.fullmatch(label) for label in bare.split("."))
