"""The in-process catalogue cache: TTL, invalidation (also of a load in flight), single-flight."""

from __future__ import annotations

import asyncio

import pytest

from adapters.cache.local import LocalCatalogueCache


class Loads:
    def __init__(self) -> None:
        self.count = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self) -> int:
        self.count += 1
        value = self.count
        await self.gate.wait()
        return value


async def test_a_value_is_served_until_its_ttl_then_loaded_again() -> None:
    now = [100.0]
    cache = LocalCatalogueCache(lambda: now[0])
    load = Loads()
    assert await cache.get("k", load, ttl=5) == 1
    now[0] = 104.9
    assert await cache.get("k", load, ttl=5) == 1
    now[0] = 105.0
    assert await cache.get("k", load, ttl=5) == 2
    assert await cache.get("other", load, ttl=5) == 3  # keys are separate


async def test_invalidate_drops_every_entry() -> None:
    cache = LocalCatalogueCache()
    load = Loads()
    await cache.get("a", load, ttl=60)
    await cache.get("b", load, ttl=60)
    await cache.invalidate()
    assert await cache.get("a", load, ttl=60) == 3
    assert await cache.get("b", load, ttl=60) == 4


async def test_concurrent_misses_share_one_load() -> None:
    cache = LocalCatalogueCache()
    load = Loads()
    load.gate.clear()
    waiting = [asyncio.create_task(cache.get("k", load, ttl=60)) for _ in range(20)]
    await asyncio.sleep(0)
    load.gate.set()
    assert await asyncio.gather(*waiting) == [1] * 20
    assert load.count == 1


async def test_a_load_begun_before_an_invalidation_is_not_kept() -> None:
    cache = LocalCatalogueCache()
    load = Loads()
    load.gate.clear()
    stale = asyncio.create_task(cache.get("k", load, ttl=60))
    await asyncio.sleep(0)
    await cache.invalidate()  # the admin change commits while the old read is in flight
    fresh = asyncio.create_task(cache.get("k", load, ttl=60))  # does not join the stale load
    await asyncio.sleep(0)
    load.gate.set()
    assert await stale == 1
    assert await fresh == 2
    assert await cache.get("k", load, ttl=60) == 2
    assert load.count == 2


async def test_a_failed_load_is_not_cached() -> None:
    cache = LocalCatalogueCache()
    calls = 0

    async def failing() -> int:
        nonlocal calls
        calls += 1
        raise RuntimeError("database down")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            await cache.get("k", failing, ttl=60)
    assert calls == 2


async def test_a_disabled_cache_loads_every_time() -> None:
    cache = LocalCatalogueCache()
    cache.enabled = False
    load = Loads()
    assert [await cache.get("k", load, ttl=60) for _ in range(3)] == [1, 2, 3]
