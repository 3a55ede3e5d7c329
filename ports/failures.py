"""A failure of a driven thing that says whether trying again may help."""

from __future__ import annotations


class RetryableError(Exception):
    """A failure with its message; `transient` ones may be retried, the others may not."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
