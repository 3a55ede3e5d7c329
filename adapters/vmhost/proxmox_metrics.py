"""Proxmox `rrddata` rows as time-series points (cpu and memory fractions, byte rates)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from ports.vmhost import TimeSeriesPoint

_STEP = Decimal("0.0001")


def _num(row: Mapping[str, Any], key: str) -> Decimal:
    """A figure of the row as a Decimal; absent (the VM was off) or unreadable counts as 0."""
    value = row.get(key)
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except ArithmeticError:
        return Decimal(0)


def _fraction(part: Decimal, whole: Decimal) -> Decimal:
    if whole <= 0:
        return Decimal(0)
    return min(Decimal(1), max(Decimal(0), part / whole)).quantize(_STEP)


def rrd_points(rows: Iterable[Mapping[str, Any]]) -> list[TimeSeriesPoint]:
    """One point per row, oldest first: `cpu` as sent, `mem / maxmem`, `maxmem` bytes and the
    netin/netout/diskread/diskwrite rates (bytes per second, averaged by Proxmox)."""
    points = []
    for row in rows:
        if row.get("time") is None:
            continue
        max_mem = _num(row, "maxmem")
        points.append(
            TimeSeriesPoint(
                timestamp=int(_num(row, "time")),
                cpu=min(Decimal(1), max(Decimal(0), _num(row, "cpu"))).quantize(_STEP),
                memory=_fraction(_num(row, "mem"), max_mem),
                memory_size=int(max_mem),
                net_in=_num(row, "netin"),
                net_out=_num(row, "netout"),
                disk_write=_num(row, "diskwrite"),
                disk_read=_num(row, "diskread"),
            )
        )
    return sorted(points, key=lambda p: p.timestamp)
