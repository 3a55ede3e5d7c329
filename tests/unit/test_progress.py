"""The backfill's progress line: rows, rate and ETA on a terminal, nothing in logs/CI."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import subprocess
import sys
from pathlib import Path

from lnvps.progress import ProgressLine
from tests.contract.test_legacy_backfill import build_legacy_db
from tests.dbtest import sqlite_url_for

REPO = Path(__file__).resolve().parents[2]


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_terminal_sees_rows_rate_and_eta_redrawn_at_most_twice_a_second() -> None:
    out, clock = io.StringIO(), FakeMonotonic()
    line = ProgressLine(out, interactive=True, monotonic=clock)
    line("phase2", 0, 1_000_000)
    clock.t += 10
    line("phase2", 250_000, 1_000_000)
    clock.t += 0.1
    line("phase2", 260_000, 1_000_000)  # too soon: not drawn
    clock.t += 30
    line("phase2", 1_000_000, 1_000_000)
    line.finish()
    frames = out.getvalue().split("\r")[1:]
    assert frames[1] == "phase2: 250,000/1,000,000 rows (25.0 %), 25,000 rows/s, ETA 0:00:30\x1b[K"
    assert len(frames) == 3
    assert frames[2].startswith("phase2: 1,000,000/1,000,000 rows (100.0 %), 24,938 rows/s, ETA -")
    assert out.getvalue().endswith("\n")


def test_a_new_phase_starts_a_new_line_and_its_own_rate() -> None:
    out, clock = io.StringIO(), FakeMonotonic()
    line = ProgressLine(out, interactive=True, monotonic=clock)
    line("phase1", 5, 5)
    clock.t += 4
    line("phase2", 0, 8)
    clock.t += 2
    line("phase2", 8, 8)
    assert out.getvalue().count("\n") == 1
    assert out.getvalue().endswith("phase2: 8/8 rows (100.0 %), 4 rows/s, ETA -\x1b[K")


def test_not_a_terminal_prints_nothing() -> None:
    out = io.StringIO()
    line = ProgressLine(out, interactive=False)
    line("phase1", 1, 2)
    line("phase1", 2, 2)
    line.finish()
    assert out.getvalue() == ""


def _legacy_db(folder: Path) -> str:
    folder.mkdir()
    url = sqlite_url_for(folder / "legacy.db")
    asyncio.run(build_legacy_db(url))
    return url


def _run(url: str, cwd: Path, *, tty: bool) -> str:
    """`lnvps migrate-legacy-billing` with stdout a pseudo-terminal or a pipe."""
    args = [sys.executable, "-m", "lnvps.cli", "migrate-legacy-billing", "--db", url]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if not tty:
        run = subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        # the fixture's unreadable upgrade params are copied with a warning, not an error
        assert run.returncode == 0, run
        return run.stdout
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=follower, stderr=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode()


def test_the_cli_draws_progress_on_a_terminal_only(tmp_path: Path) -> None:
    piped = _run(_legacy_db(tmp_path / "piped"), tmp_path, tty=False)
    assert "rows/s" not in piped and "\r" not in piped
    assert "Phase 1: 9 VMs linked" in piped
    shown = _run(_legacy_db(tmp_path / "tty"), tmp_path, tty=True)
    assert "phase1: 9/9 rows (100.0 %)" in shown
    assert "phase2: " in shown and "rows/s, ETA" in shown
    assert "Phase 1: 9 VMs linked" in shown
