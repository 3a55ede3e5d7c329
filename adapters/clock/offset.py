"""A dev-only clock running ahead of real time by an offset kept in a file (time travel)."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path


class OffsetClock:
    """`now()` = the system's UTC time plus the offset stored in `offset_file`.

    `lnvps dev advance-clock` moves the offset from another process; a running dev server
    sees the jump on its next reading. Never used outside the embedded dev default.
    """

    def __init__(self, offset_file: Path) -> None:
        self._path = offset_file
        self._seen: tuple[int, int, int] | None = None  # the file's (inode, mtime, size)
        self._offset = timedelta(0)

    def offset(self) -> timedelta:
        """The file's offset, read again only when the file changed (a `stat` per reading
        instead of an open and a parse: every request reads the clock, issue 10)."""
        try:
            found = os.stat(self._path)
        except FileNotFoundError:
            self._seen = None
            return timedelta(0)
        seen = (found.st_ino, found.st_mtime_ns, found.st_size)
        if seen != self._seen:
            try:
                data = json.loads(self._path.read_text())
            except FileNotFoundError:
                return timedelta(0)
            self._offset = timedelta(seconds=int(data["offset_seconds"]))
            self._seen = seen
        return self._offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset()

    def advance(self, delta: timedelta) -> timedelta:
        """Move the clock forward (never backwards) and return the new total offset."""
        if delta < timedelta(0):
            raise ValueError("the dev clock only moves forward")
        total = self.offset() + delta
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".clock-")
        with os.fdopen(fd, "w") as handle:
            json.dump({"offset_seconds": int(total.total_seconds())}, handle)
        os.replace(tmp, self._path)
        return total

    def reset(self) -> None:
        """Back to real time (offset 0): the offset file is removed."""
        self._path.unlink(missing_ok=True)


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `3h`, `2d`, `1w` (or a bare number of seconds) as a timedelta."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
    text = text.strip().lower()
    if not text:
        raise ValueError("empty duration")
    unit = text[-1] if text[-1] in units else "s"
    number = text[:-1] if text[-1] in units else text
    if not number.isdigit():
        raise ValueError(f"not a duration: {text!r} (try 30m, 2d)")
    return timedelta(seconds=int(number) * units[unit])
