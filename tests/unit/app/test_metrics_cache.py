"""The VM metrics cache: one load per VM within its window, bounded in size."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from app.metrics_cache import MetricsCache
from ports.vmhost import TimeSeriesPoint


class Tick:
    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


async def test_a_vm_is_loaded_again_only_after_the_ttl_and_old_vms_are_dropped() -> None:
    tick = Tick()
    cache = MetricsCache(30, 2, now=tick)
    loads: list[int] = []

    def loader(vm_id: int) -> Callable[[], Awaitable[Sequence[TimeSeriesPoint]]]:
        async def load() -> Sequence[TimeSeriesPoint]:
            loads.append(vm_id)
            return []

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
