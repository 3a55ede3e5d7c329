"""Time series of libvirt VMs: counter samples kept per VM, turned into rates between samples."""

from __future__ import annotations

import itertools
import threading
from decimal import Decimal

import attrs

from ports.vmhost import TimeSeriesPoint

_NS = 1_000_000_000
_STEP = Decimal("0.0001")
#: samples older than this (seconds) are dropped: the series covers about the last hour
WINDOW_S = 3600
#: at most this many samples are kept per VM
MAX_SAMPLES = 360


@attrs.frozen(kw_only=True)
class Sample:
    """Cumulative counters of a running VM at `at` (Unix s): cpu ns, bytes; memory a fraction."""

    at: int
    cpu_ns: int
    vcpus: int
    memory: Decimal
    memory_size: int
    net_in: int
    net_out: int
    disk_read: int
    disk_write: int


def _rate(later: int, earlier: int, seconds: int) -> Decimal:
    return (Decimal(later - earlier) / seconds).quantize(_STEP)


def point_between(earlier: Sample, later: Sample) -> TimeSeriesPoint | None:
    """Averages over the interval; None when no time passed or a counter went back (restart)."""
    seconds = later.at - earlier.at
    counters = ("cpu_ns", "net_in", "net_out", "disk_read", "disk_write")
    if seconds <= 0 or any(getattr(later, c) < getattr(earlier, c) for c in counters):
        return None
    cpu = Decimal(later.cpu_ns - earlier.cpu_ns) / (seconds * _NS * max(later.vcpus, 1))
    return TimeSeriesPoint(
        timestamp=later.at,
        cpu=min(Decimal(1), cpu).quantize(_STEP),
        memory=later.memory,
        memory_size=later.memory_size,
        net_in=_rate(later.net_in, earlier.net_in, seconds),
        net_out=_rate(later.net_out, earlier.net_out, seconds),
        disk_write=_rate(later.disk_write, earlier.disk_write, seconds),
        disk_read=_rate(later.disk_read, earlier.disk_read, seconds),
    )


class SampleHistory:
    """The samples of each VM seen by this client in the last hour (thread-safe)."""

    def __init__(self) -> None:
        self._samples: dict[int, list[Sample]] = {}
        self._lock = threading.Lock()

    def record(self, vm_id: int, sample: Sample) -> None:
        """Keep a sample; one at the same second as the last replaces it."""
        with self._lock:
            kept = self._samples.setdefault(vm_id, [])
            if kept and kept[-1].at >= sample.at:
                kept.pop()
            kept.append(sample)
            horizon = sample.at - WINDOW_S
            while kept and (kept[0].at < horizon or len(kept) > MAX_SAMPLES):
                kept.pop(0)

    def series(self, vm_id: int) -> list[TimeSeriesPoint]:
        """One point per pair of consecutive samples, oldest first."""
        with self._lock:
            kept = list(self._samples.get(vm_id, ()))
        points = (point_between(a, b) for a, b in itertools.pairwise(kept))
        return [p for p in points if p is not None]

    def forget(self, vm_id: int) -> None:
        with self._lock:
            self._samples.pop(vm_id, None)
