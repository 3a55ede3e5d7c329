"""The dev Lightning rail's state: in memory, or an append-only journal file shared by processes."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson

from ports.lightning import LightningUnavailable

#: the journal's format (line one); version 1 was one JSON document rewritten per change
VERSION: Final = 2
_LEGACY_VERSION: Final = 1
T = TypeVar("T")
Record = dict[str, Any]


class DevState:
    """Invoice records by payment hash (hex), and the settled ones by settle index."""

    def __init__(self, invoices: dict[str, Record] | None = None, last_settle_index: int = 0):
        self.invoices: dict[str, Record] = {}
        self.by_settle_index: dict[int, str] = {}
        self.last_settle_index = last_settle_index
        for key, record in (invoices or {}).items():
            self.put(key, record)

    def put(self, key: str, record: Record) -> None:
        self.invoices[key] = record
        index = int(record.get("settle_index") or 0)
        if record.get("state") == "SETTLED" and index > 0:
            self.by_settle_index[index] = key
            self.last_settle_index = max(self.last_settle_index, index)

    def settled_after(self, index: int) -> list[tuple[str, Record]]:
        """Settled invoices with a settle index above `index`, in settle order."""
        found = (self.by_settle_index.get(i) for i in range(index + 1, self.last_settle_index + 1))
        return [(key, self.invoices[key]) for key in found if key is not None]


#: a change of the state: its result and the payment hash of the record it changed (or None)
Change = Callable[[DevState], tuple[T, str | None]]


def _header(last_settle_index: int) -> bytes:
    return _line({"version": VERSION, "last_settle_index": last_settle_index})


def _line(value: dict[str, Any]) -> bytes:
    """Compact JSON with sorted keys: by orjson (~15x faster: one line per new invoice, issue
    10), by `json` for what orjson refuses (integers beyond 64 bits); both read back the same."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS) + b"\n"
    except TypeError:
        return json.dumps(value, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def record_line(key: str, record: Record) -> bytes:
    """One journal line: the whole current record of one invoice (the last line wins)."""
    return _line({"hash": key, "record": record})


def read_journal(text: bytes) -> DevState:
    """The state a whole state file describes (a journal or a version 1 document); ValueError."""
    if not text:
        return DevState()
    if not _is_journal(text):
        return _legacy(text)
    return _apply_lines(text[: text.rfind(b"\n") + 1], DevState(), header=True)


class StateJournal:
    """The state file as a JSON-lines journal: a header line, then one line per changed record.

    Every change appends the changed record's line under an exclusive `fcntl.flock` on
    `<file>.lock` (so `lnvps dev pay` in another process and this one never interleave); a
    batch of changes is one write. Appends are not fsynced: like the database under WAL
    with `synchronous=NORMAL`, a crashed process loses nothing it wrote, a power cut may
    lose the last changes (this rail moves no money). `try_apply` does the same without
    waiting, for the event loop: it gives up when another thread or process holds the lock.
    Readers take no lock: each process keeps the state it has read and reads only what was
    appended since (a replaced file, seen by its inode, is read again from the start); a last
    line without its newline is a write in progress (or one torn by a crash, which the next
    writer cuts off) and is not read yet. A version 1 file (one JSON document) is still
    read, and rewritten as a journal (temp file, fsync, rename) by the first change.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._state = DevState()
        self._inode: int | None = None
        self._offset = 0
        self._lock_path = path.with_name(path.name + ".lock")
        self._lock_fd: int | None = None  # the lock file, opened once (under `_lock`)

    def query(self, read: Callable[[DevState], T]) -> T:
        """`read` applied to the state as the file has it now (any thread; no file lock)."""
        with self._lock:
            self._catch_up(writing=False)
            return read(self._state)

    def apply(self, changes: Sequence[Change[Any]]) -> list[Any]:
        """Apply `changes` in order and persist them in one append; each change's result, or
        the exception it raised (nothing of a failed change is kept). LightningUnavailable
        for all when the file cannot be read or written. Waits for the lock (a thread's job)."""
        with self._lock:
            outcomes = self._apply_under_file_lock(changes, wait=True)
        assert outcomes is not None  # a waiting lock is always had
        return outcomes

    def try_apply(self, changes: Sequence[Change[Any]]) -> list[Any] | None:
        """`apply` if the lock is free right now, else None (nothing applied): for the event
        loop, which must not wait for another process."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._apply_under_file_lock(changes, wait=False)
        finally:
            self._lock.release()

    def _apply_under_file_lock(
        self, changes: Sequence[Change[Any]], *, wait: bool
    ) -> list[Any] | None:
        try:
            fd = self._lock_file()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            try:
                return self._apply_locked(changes)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            raise LightningUnavailable(
                f"cannot update dev Lightning state {self.path}: {exc}"
            ) from exc

    def _lock_file(self) -> int:
        """The lock file's descriptor, opened once and closed with this object."""
        if self._lock_fd is None:
            self._lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            weakref.finalize(self, os.close, fd)
            self._lock_fd = fd
        return self._lock_fd

    def _apply_locked(self, changes: Sequence[Change[Any]]) -> list[Any]:
        self._catch_up(writing=True)
        outcomes: list[Any] = []
        lines: list[bytes] = []
        for change in changes:
            try:
                result, key = change(self._state)
            except Exception as exc:  # the caller's to raise; the others still apply
                outcomes.append(exc)
                continue
            outcomes.append(result)
            if key is not None:
                lines.append(record_line(key, self._state.invoices[key]))
        if lines:
            try:
                self._append(b"".join(lines))
            except BaseException:
                self._forget()  # memory may hold what the file does not: read it again
                raise
        return outcomes

    def _forget(self) -> None:
        self._state, self._inode, self._offset = DevState(), None, 0

    def _catch_up(self, *, writing: bool) -> None:
        if self._inode is not None:  # nothing appended or replaced since: no need to open it
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                stat = None
            if stat is not None and (stat.st_ino, stat.st_size) == (self._inode, self._offset):
                return
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            self._forget()
            return
        except OSError as exc:
            raise LightningUnavailable(
                f"cannot read dev Lightning state {self.path}: {exc}"
            ) from exc
        with handle:
            inode, size = _identity(handle.fileno())
            if inode != self._inode or size < self._offset:
                self._forget()
            handle.seek(self._offset)
            new = handle.read()
        if self._offset == 0:
            if not new:  # nothing yet: the first change writes the header
                self._forget()
                return
            if not _is_journal(new):  # a file's header line is written whole (renamed in)
                self._load_legacy(new, writing=writing)
                return
        end = new.rfind(b"\n") + 1
        try:
            self._state = _apply_lines(new[:end], self._state, header=self._offset == 0)
        except (ValueError, KeyError, TypeError):
            self._forget()
            raise LightningUnavailable(
                f"dev Lightning state {self.path} has an unknown format"
            ) from None
        self._inode, self._offset = inode, self._offset + end
        if writing and end < len(new):  # torn by a crash: no writer is running now
            os.truncate(self.path, self._offset)

    def _load_legacy(self, text: bytes, *, writing: bool) -> None:
        try:
            state = _legacy(text)
        except (ValueError, KeyError, TypeError):
            self._forget()
            raise LightningUnavailable(f"dev Lightning state {self.path} is not JSON") from None
        if not writing:  # read whole again next time, until a change rewrites it
            self._forget()
            self._state = state
            return
        body = _header(state.last_settle_index) + b"".join(
            record_line(key, record) for key, record in state.invoices.items()
        )
        _write_atomically(self.path, body)
        self._state = state
        self._inode, _ = _identity_of(self.path)
        self._offset = len(body)

    def _append(self, data: bytes) -> None:
        if self._inode is None:  # readers never see a file without its whole header line
            _write_atomically(self.path, _header(self._state.last_settle_index))
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            self._inode, size = _identity(fd)
        finally:
            os.close(fd)
        self._offset = size


def _identity(fd: int) -> tuple[int, int]:
    stat = os.fstat(fd)
    return stat.st_ino, stat.st_size


def _identity_of(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_size


def _is_journal(text: bytes) -> bool:
    first = text.split(b"\n", 1)[0]
    try:
        header = json.loads(first)
    except ValueError:
        return False
    return isinstance(header, dict) and header.get("version") == VERSION


def _legacy(text: bytes) -> DevState:
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("version") != _LEGACY_VERSION:
        raise ValueError("unknown format")
    return DevState(dict(document["invoices"]), int(document["last_settle_index"]))


def _apply_lines(text: bytes, state: DevState, *, header: bool) -> DevState:
    """`state` with the complete journal lines of `text` applied (the header line first)."""
    lines = text.splitlines()
    if header and lines:
        first = json.loads(lines.pop(0))
        state.last_settle_index = max(state.last_settle_index, int(first["last_settle_index"]))
    for raw in lines:
        entry = json.loads(raw)
        if not isinstance(entry, dict) or not isinstance(entry.get("record"), dict):
            raise ValueError("not a journal line")
        state.put(str(entry["hash"]), entry["record"])
    return state


def _write_atomically(path: Path, body: bytes) -> None:
    """Temp file in the same directory, fsync, rename over the target."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
