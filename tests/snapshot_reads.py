"""Detector of MariaDB reads from a snapshot older than a lock (tests only, `LNVPS_SNAPSHOT_LOG`).

InnoDB (REPEATABLE READ) fixes a transaction's read snapshot at its first plain (non-locking)
read of a table. A locking read (`FOR UPDATE`, `LOCK IN SHARE MODE`) or a named lock
(`GET_LOCK`) taken after that waits for rivals and then sees their commits, but every plain
read after it still answers from the older snapshot: a use case that decides on such a read
decides on data the lock was meant to make current. SQLite (`BEGIN IMMEDIATE` at the locking
read) and memory never show it. A `SELECT … FOR UPDATE` with a plain subquery is a lock and a
plain read at once, so it is flagged as both; whether its subquery's read (which fixes the
snapshot) comes before the lock wait depends on the plan (MariaDB 10.11: an uncorrelated
scalar subquery is read first, before the wait; an `IN` semi-join or a correlated subquery in
the select list, as `SshKeys.lock_owner`'s count, after the row is locked). Writes (`UPDATE`,
`DELETE`, `INSERT … SELECT`) read current rows and fix no snapshot.

`Detector(sink)` hooks every MariaDB engine's `before_cursor_execute` (class-level events,
with the transaction's end) and passes `sink` one record per transaction that ran a plain read
before a lock: `stale-after-lock` when plain reads followed that lock, `read-before-lock`
otherwise. Each statement carries the app/ frames that issued it (the use case) and its
repository method. `Detector.to_file(path)` writes them as JSON lines (`LNVPS_SNAPSHOT_LOG`,
tests/conftest.py); `python -m tests.snapshot_reads LOG…` lists the distinct occurrences
(`pairs`), which `tests/contract/test_snapshot_guard.py` checks against its judged list.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Self

import greenlet  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import Pool

ROOT = Path(__file__).resolve().parents[1]
_APP = str(ROOT / "app") + os.sep
_MYSQL_ADAPTER = str(ROOT / "adapters" / "mysql") + os.sep
_HTTP_ADAPTER = str(ROOT / "adapters" / "http") + os.sep
_TESTS = str(ROOT / "tests") + os.sep
_STATE = "lnvps_snapshot_state"
#: app/ frames kept per statement, innermost first
APP_FRAMES = 6

_LOCK = re.compile(r"\bFOR\s+UPDATE\b|\bLOCK\s+IN\s+SHARE\s+MODE\b|\bFOR\s+SHARE\b|\bGET_LOCK\s*\(")
_SELECT = re.compile(r"\bSELECT\b")
_FROM_TABLE = re.compile(r"\bFROM\s+(?!information_schema\b|dual\b)[`\w]", re.IGNORECASE)


def classify(sql: str) -> tuple[bool, bool]:
    """(plain read, lock) of one statement: a `SELECT` of a table without a locking clause is
    a plain read; a locking `SELECT` is a lock, and a plain read too when one of its nested
    `SELECT`s has no locking clause of its own (MariaDB reads it from the snapshot)."""
    text = sql.lstrip(" \t\r\n(").upper()
    if not text.startswith(("SELECT", "WITH")):
        return False, False
    locks = len(_LOCK.findall(text))
    reads_table = bool(_FROM_TABLE.search(text))
    if not locks:
        return reads_table, False
    return reads_table and len(_SELECT.findall(text)) > locks, True


def _caller_frames() -> Iterator[FrameType]:
    """This statement's frames, innermost first, across SQLAlchemy's greenlet: the sync
    code's own, then the awaiting coroutines' (the parent greenlet's suspended stack)."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        yield frame
        frame = frame.f_back
    parent = greenlet.getcurrent().parent
    frame = parent.gr_frame if parent is not None else None
    while frame is not None:
        yield frame
        frame = frame.f_back


def _where(frame: FrameType) -> str:
    code = frame.f_code
    return f"{os.path.relpath(code.co_filename, ROOT)}:{frame.f_lineno} {code.co_qualname}"


def statement_origin(sql: str) -> dict[str, Any]:
    """The statement's head, its repository method and the app/ (else http/tests) frames."""
    repo = ""
    app: list[str] = []
    edge: list[str] = []
    for frame in _caller_frames():
        name = frame.f_code.co_filename
        if not repo and name.startswith(_MYSQL_ADAPTER):
            repo = _where(frame)
        elif name.startswith(_APP):
            if len(app) < APP_FRAMES:
                app.append(_where(frame))
        elif not app and len(edge) < 2 and name.startswith((_HTTP_ADAPTER, _TESTS)):
            if name == __file__:
                continue
            edge.append(_where(frame))
    return {"sql": " ".join(sql.split())[:160], "repo": repo, "app": app or edge}


class _Transaction:
    """What one transaction ran so far: its first plain read, locks and plain reads."""

    def __init__(self) -> None:
        self.snapshot: dict[str, Any] | None = None
        #: the first lock taken after the snapshot was fixed, and plain reads after it
        self.lock: dict[str, Any] | None = None
        self.after: list[dict[str, Any]] = []
        self.locks_after_snapshot = 0

    def saw(self, sql: str) -> None:
        plain, lock = classify(sql)
        if not plain and not lock:
            return
        if lock:
            if self.snapshot is None and plain:
                self.snapshot = statement_origin(sql)  # its subquery, before the lock wait
            if self.snapshot is not None:
                self.locks_after_snapshot += 1
                if self.lock is None:
                    self.lock = statement_origin(sql)
            return
        if self.snapshot is None:
            self.snapshot = statement_origin(sql)
        elif self.lock is not None and len(self.after) < 20:
            self.after.append(statement_origin(sql))

    def record(self) -> dict[str, Any] | None:
        if self.lock is None:
            return None
        return {
            "kind": "stale-after-lock" if self.after else "read-before-lock",
            "test": os.environ.get("PYTEST_CURRENT_TEST", ""),
            "snapshot": self.snapshot,
            "lock": self.lock,
            "locks": self.locks_after_snapshot,
            "after": self.after,
        }


class Detector:
    """The hooks on every engine (class-level events); each finished transaction that read
    before a lock is passed to `sink` (a dict as `_Transaction.record` makes it)."""

    def __init__(self, sink: Callable[[dict[str, Any]], None]) -> None:
        self.sink = sink
        self._key = f"{_STATE}_{id(self)}"

    @classmethod
    def to_file(cls, path: Path) -> Detector:
        """A detector appending each record to `path` as a JSON line."""

        def write(record: dict[str, Any]) -> None:
            with path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")

        return cls(write)

    def _end(self, conn: Connection) -> None:
        try:
            state = conn.info.pop(self._key, None)
        except Exception:  # closed or invalidated: the pool's checkin flushes it
            return
        self._flush(state)

    def _flush(self, state: _Transaction | None) -> None:
        record = state.record() if state is not None else None
        if record is not None:
            self.sink(record)

    def before_cursor_execute(
        self, conn: Connection, cursor: Any, sql: str, params: Any, context: Any, many: bool
    ) -> None:
        if conn.dialect.name != "mysql":
            return
        info = conn.info
        state = info.get(self._key)
        if state is None:
            state = info[self._key] = _Transaction()
        state.saw(sql)

    def checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        self._flush(record.info.pop(self._key, None))

    def checkin(self, dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            self._flush(record.info.pop(self._key, None))

    def _hooks(self) -> list[tuple[Any, str, Callable[..., None]]]:
        return [
            (Engine, "before_cursor_execute", self.before_cursor_execute),
            (Engine, "commit", self._end),
            (Engine, "rollback", self._end),
            (Pool, "checkout", self.checkout),
            (Pool, "checkin", self.checkin),
        ]

    def install(self) -> None:
        for target, name, hook in self._hooks():
            event.listen(target, name, hook)

    def remove(self) -> None:
        for target, name, hook in self._hooks():
            event.remove(target, name, hook)

    def __enter__(self) -> Self:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def log_path(base: str) -> Path:
    """This process's log: `base` with the pytest-xdist worker's name appended."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return Path(f"{base}.{worker}.jsonl")


def site(part: dict[str, Any]) -> str:
    """Where a statement came from, without line numbers: its innermost app/ function
    (`app/billing/completion.py _apply`), else its repository method."""
    for frame in part["app"]:
        if frame.startswith("app/"):
            path, rest = frame.split(":", 1)
            return f"{path} {rest.split(' ', 1)[1]}"
    return part["repo"].split(" ", 1)[-1] or "?"


def pairs(record: dict[str, Any]) -> set[str]:
    """The record's occurrences: `read A -> lock B` (a plain read fixed the snapshot before
    the lock) and `lock B -> read C` (a plain read answered from that snapshot after it)."""
    lock = site(record["lock"])
    found = {f"read {site(record['snapshot'])} -> lock {lock}"}
    found.update(f"lock {lock} -> read {site(after)}" for after in record["after"])
    return found


def summarize(lines: Iterable[str]) -> str:
    """Each distinct occurrence (`pairs`) with how often it was seen, one test that saw it
    and one full app/ stack of its lock."""
    seen: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        record = json.loads(line)
        for pair in pairs(record):
            seen.setdefault(pair, []).append(record)
    out: list[str] = []
    for pair, records in sorted(seen.items()):
        tests = sorted({r["test"].split(" ")[0] for r in records})
        out.append(f"{pair}  ({len(records)}x, {len(tests)} tests)")
        out.append(f"    e.g.  {tests[0]}")
        out.append("    lock  " + " <- ".join(records[0]["lock"]["app"]))
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover - a tool
    seen: list[str] = []
    for name in sys.argv[1:]:
        seen.extend(Path(name).read_text(encoding="utf-8").splitlines())
    sys.stdout.write(summarize(seen) + "\n")
