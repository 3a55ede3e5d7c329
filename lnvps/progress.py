"""A one-line progress display (rows, rate, ETA) for long commands, shown on terminals only."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import TextIO

#: the least time between two redraws, in seconds of wall time (not business time)
REDRAW_S = 0.5


def _eta(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class ProgressLine:
    """`progress(phase, done, total)` redraws `phase: done/total rows (p %), r rows/s, ETA t`.

    Only when `interactive` (stdout is a terminal): in logs and CI the command stays quiet
    apart from its final report. Redraws at most every REDRAW_S, and always at a phase's end.
    """

    def __init__(
        self,
        out: TextIO,
        *,
        interactive: bool,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = out
        self._on = interactive
        self._now = monotonic
        self._phase: str | None = None
        self._started = 0.0
        self._drawn = 0.0
        self._open = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self._on:
            return
        now = self._now()
        if phase != self._phase:
            self.finish()
            self._phase, self._started, self._drawn = phase, now, float("-inf")
        if done < total and now - self._drawn < REDRAW_S:
            return
        self._drawn = now
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * done / total:.1f} %)" if total else ""
        eta = _eta((total - done) / rate) if rate > 0 and done < total else "-"
        line = f"{phase}: {done:,}/{total:,} rows{share}, {rate:,.0f} rows/s, ETA {eta}"
        self._out.write("\r" + line + "\x1b[K")
        self._out.flush()
        self._open = True

    def finish(self) -> None:
        """End the current line (before the final report is printed)."""
        if self._open:
            self._out.write("\n")
            self._out.flush()
            self._open = False
