"""A stored secret that the configured key cannot decrypt: kept as stored, never used."""

from __future__ import annotations

from typing import Literal

import attrs


@attrs.frozen
class Unreadable:
    """The value of an encrypted column (D28) that cannot be decrypted: sealed with a lost or
    rotated key, or corrupted.

    Storage reads it as this instead of failing the whole row, so one bad column does not make
    a user, a host or a payment unreadable. It stands for "no usable value": it is falsy, like
    the empty string or None a field uses for "absent", so a truthiness check treats it as
    absent, and mypy keeps it from being used as text. It is written back exactly as it was
    stored (`stored`), so an operator who restores the old key gets the value back; setting a
    new value replaces it. `stored` is kept out of reprs, hence out of logs.
    """

    stored: str = attrs.field(repr=False)

    def __bool__(self) -> Literal[False]:
        return False
