"""The VM metrics cache: one load per VM within its window, bounded in size."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal

from app.metrics_cache import MetricsCache
from ports.vmhost import TimeSeriesPoint


class Tick:
    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


POINT = TimeSeriesPoint(
    timestamp=1_767_225_600,
    cpu=Decimal("0.5"),
    memory=Decimal("0.25"),
    memory_size=1 << 30,
    net_in=Decimal(0),
    net_out=Decimal(0),
    disk_write=Decimal(0),
    disk_read=Decimal(0),
)


async def test_a_vm_is_loaded_again_only_after_the_ttl_and_old_vms_are_dropped() -> None:
    tick = Tick()
    cache = MetricsCache(30, 2, now=tick)
    loads: list[int] = []

    def loader(vm_id: int) -> Callable[[], Awaitable[Sequence[TimeSeriesPoint]]]:
        async def load() -> Sequence[TimeSeriesPoint]:
            loads.append(vm_id)
            return [POINT]

        return load

    for _ in range(3):
        await cache.get(1, loader(1))
    assert loads == [1]
    tick.value += 29
    await cache.get(1, loader(1))
    assert loads == [1]
    tick.value += 2
    await cache.get(1, loader(1))
    assert loads == [1, 1]
    await cache.get(2, loader(2))
    await cache.get(3, loader(3))  # over 2 entries: VM 1 (the oldest stored) is dropped
    await cache.get(3, loader(3))
    await cache.get(1, loader(1))
    assert loads == [1, 1, 2, 3, 1]


async def test_an_empty_answer_is_kept_only_the_short_window() -> None:
    """A VM just started has no sample yet: its empty series is asked again after
    `empty_ttl`, not after the whole window; the first real answer is kept the whole window."""
    tick = Tick()
    cache = MetricsCache(30, 2, empty_ttl=5, now=tick)
    answers: list[Sequence[TimeSeriesPoint]] = [[], [POINT]]
    loads = 0

    async def load() -> Sequence[TimeSeriesPoint]:
        nonlocal loads
        loads += 1
        return answers[min(loads, len(answers)) - 1]

    assert await cache.get(1, load) == []
    tick.value += 4
    assert await cache.get(1, load) == []
    assert loads == 1
    tick.value += 2
    assert await cache.get(1, load) == [POINT]
    tick.value += 29
    assert await cache.get(1, load) == [POINT]
    assert loads == 2
