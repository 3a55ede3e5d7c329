"""The dummy host's per-VM record and the JSON file it is kept in across restarts."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from ports.vmhost import VmRunningState, VmRunState

log = logging.getLogger(__name__)

_CPU_BASE, _CPU_SPAN = Decimal("0.05"), Decimal("0.30")
_MEM_BASE, _MEM_SPAN = Decimal("0.20"), Decimal("0.40")
_COUNTERS = ("uptime_secs", "net_in", "net_out", "disk_read", "disk_write", "last_tick")


@attrs.define(kw_only=True)
class MockVm:
    """One simulated VM; field names and order are those of the reference's JSON file."""

    state: VmRunState = VmRunState.STOPPED
    uptime_secs: int = 0
    net_in: int = 0
    net_out: int = 0
    disk_read: int = 0
    disk_write: int = 0
    last_tick: int = 0

    def tick(self, now_s: int, rng: random.Random) -> None:
        """Advance the counters by the time since the last tick; they only grow while running."""
        elapsed = max(0, now_s - self.last_tick)
        self.last_tick = now_s
        if self.state is VmRunState.RUNNING:
            self.uptime_secs += elapsed
            self.net_in += elapsed * rng.randrange(250_000)
            self.net_out += elapsed * rng.randrange(125_000)
            self.disk_read += elapsed * rng.randrange(50_000_000)
            self.disk_write += elapsed * rng.randrange(25_000_000)

    def snapshot(self, now_s: int) -> VmRunningState:
        """The VM as a `VmRunningState`; cpu/memory oscillate with uptime while running."""
        cpu = mem = Decimal(0)
        if self.state is VmRunState.RUNNING:
            cpu = _CPU_BASE + _CPU_SPAN * Decimal(self.uptime_secs % 60) / 60
            mem = _MEM_BASE + _MEM_SPAN * Decimal(self.uptime_secs % 300) / 300
        return VmRunningState(
            timestamp=now_s,
            state=self.state,
            cpu_usage=cpu,
            mem_usage=mem,
            uptime=self.uptime_secs,
            net_in=self.net_in,
            net_out=self.net_out,
            disk_write=self.disk_write,
            disk_read=self.disk_read,
        )

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.value, **{name: getattr(self, name) for name in _COUNTERS}}

    @classmethod
    def from_json(cls, data: Any) -> MockVm:
        if not isinstance(data, dict):
            raise ValueError(f"VM record is not an object: {data!r}")
        counters = {name: _count(data.get(name, 0)) for name in _COUNTERS}
        return cls(state=VmRunState(data["state"]), **counters)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"counter is not an unsigned integer: {value!r}")
    return value


def dump_vms(vms: dict[int, MockVm]) -> str:
    """The reference's format: one object keyed by VM id, compact, state in lower case."""
    return json.dumps({str(k): vms[k].to_json() for k in sorted(vms)}, separators=(",", ":"))


def parse_vms(text: str) -> dict[int, MockVm]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("state file is not a JSON object")
    return {int(key): MockVm.from_json(record) for key, record in data.items()}


class DummyStateFile:
    """The JSON file plus a `.lock` file beside it.

    The lock file is held (flock) around every read-modify-write, so instances in several
    threads or processes (API and worker) never interleave, and it carries a generation number
    bumped on every save, so an instance knows when its cached map is stale. The JSON file is
    replaced atomically (temp file + rename): a reader never sees half a file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._lock_fd: int | None = None
        self._synced: tuple[int, int, int, int] | None = None

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
            yield
        finally:
            self._lock_fd = None
            os.close(fd)  # closing releases the flock

    def changed_since_last_sync(self) -> bool:
        """True before the first load and whenever someone else saved (or edited) the file."""
        return self._synced is None or self._synced != self._signature()

    def load(self) -> dict[int, MockVm]:
        """The saved map; an absent file is empty, an unreadable one is logged and empty."""
        vms: dict[int, MockVm] = {}
        try:
            vms = parse_vms(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError) as exc:
            log.warning("dummy host state file %s unreadable, starting empty: %s", self.path, exc)
        self._synced = self._signature()
        return vms

    def save(self, vms: dict[int, MockVm]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(dump_vms(vms))
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._write_generation(self._read_generation() + 1)
        self._synced = self._signature()

    def _signature(self) -> tuple[int, int, int, int]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return (self._read_generation(), 0, 0, -1)
        return (self._read_generation(), st.st_ino, st.st_mtime_ns, st.st_size)

    def _read_generation(self) -> int:
        assert self._lock_fd is not None, "state file used outside locked()"
        raw = os.pread(self._lock_fd, 32, 0)
        try:
            return int(raw.decode("ascii").strip() or 0)
        except ValueError:
            return 0

    def _write_generation(self, generation: int) -> None:
        assert self._lock_fd is not None, "state file used outside locked()"
        data = str(generation).encode("ascii")
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, data, 0)
