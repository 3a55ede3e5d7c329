"""Synthetic but plausible metrics of a dummy-host VM (lifecycle.md §11.2, the hourly series)."""

from __future__ import annotations

import math
from decimal import Decimal

from ports.vmhost import TimeSeriesPoint

#: the hourly series: 60 points one minute apart
POINTS = 60
INTERVAL_S = 60
MEMORY_SIZE = 1024**3
_STEP = Decimal("0.0001")


def _decimal(value: float) -> Decimal:
    """A float from `math.sin` as an exact decimal of four places (D1: no floats leave here)."""
    return Decimal(repr(value)).quantize(_STEP)


def hourly_series(now_s: int) -> list[TimeSeriesPoint]:
    """Point i at `now − (60 − i) × 60 s`: cpu `0.05 + 0.30·|sin(2πi/60)|`, memory
    `0.20 + 0.40·|sin(πi/60)|` of 1 GiB, network and disk rates proportional to cpu."""
    series = []
    for i in range(POINTS):
        cpu = Decimal("0.05") + Decimal("0.30") * _decimal(abs(math.sin(2 * math.pi * i / POINTS)))
        memory = Decimal("0.20") + Decimal("0.40") * _decimal(abs(math.sin(math.pi * i / POINTS)))
        series.append(
            TimeSeriesPoint(
                timestamp=now_s - (POINTS - i) * INTERVAL_S,
                cpu=cpu.quantize(_STEP),
                memory=memory.quantize(_STEP),
                memory_size=MEMORY_SIZE,
                net_in=64_000 * cpu,
                net_out=32_000 * cpu,
                disk_write=2_500_000 * cpu,
                disk_read=5_000_000 * cpu,
            )
        )
    return series
