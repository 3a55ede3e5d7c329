"""Wire form of VM metrics: `TimeSeriesData` (api.md §6.5), numbers as JSON floats (f32)."""

from __future__ import annotations

from typing import Any

from ports.vmhost import TimeSeriesPoint


def time_series_json(point: TimeSeriesPoint) -> dict[str, Any]:
    return {
        "timestamp": point.timestamp,
        "cpu": float(point.cpu),
        "memory": float(point.memory),
        "memory_size": point.memory_size,
        "net_in": float(point.net_in),
        "net_out": float(point.net_out),
        "disk_write": float(point.disk_write),
        "disk_read": float(point.disk_read),
    }
