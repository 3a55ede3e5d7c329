"""VmStateCache contract over the in-memory map and Redis."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from adapters.cache.redis_vm_state import RedisVmStateCache
from adapters.memory.vm_state import MemoryVmStateCache
from ports.vm_state import VmStateCache
from ports.vmhost import VmRunningState, VmRunState
from tests.redistest import connect_redis

RUNNING = VmRunningState(
    timestamp=1_795_617_333,
    state=VmRunState.RUNNING,
    cpu_usage=Decimal("0.35"),
    mem_usage=Decimal("0.2133333333333333333333333333"),
    uptime=42,
    net_in=10,
    net_out=20,
    disk_write=30,
    disk_read=40,
)


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[VmStateCache]:
    if request.param == "memory":
        yield MemoryVmStateCache()
        return
    client = await connect_redis()
    prefix = f"lnvps_test_vm_state_{secrets.token_hex(4)}:"
    try:
        yield RedisVmStateCache(client, ttl=60, key_prefix=prefix)
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_an_unknown_vm_has_no_state(cache: VmStateCache) -> None:
    assert await cache.get(404) is None


async def test_a_state_round_trips_exactly(cache: VmStateCache) -> None:
    await cache.set(7, RUNNING)
    assert await cache.get(7) == RUNNING
    stopped = VmRunningState(timestamp=1, state=VmRunState.STOPPED)
    await cache.set(7, stopped)
    assert await cache.get(7) == stopped


async def test_many_states_in_one_read_leave_out_the_unknown(cache: VmStateCache) -> None:
    stopped = VmRunningState(timestamp=1, state=VmRunState.STOPPED)
    await cache.set(7, RUNNING)
    await cache.set(9, stopped)
    assert await cache.get_many([9, 404, 7, 7]) == {7: RUNNING, 9: stopped}
    assert await cache.get_many([]) == {}


async def test_redis_entries_expire() -> None:
    """Each write sets the entry's time to live (Redis keeps it in milliseconds): checked
    rather than waited out; an entry Redis expired then reads as unknown."""
    client = await connect_redis()
    prefix = f"lnvps_test_vm_state_{secrets.token_hex(4)}:"
    try:
        cache = RedisVmStateCache(client, ttl=1, key_prefix=prefix)
        await cache.set(1, RUNNING)
        assert await cache.get(1) == RUNNING
        assert 0 < await client.pttl(f"{prefix}1") <= 1000
        await client.pexpire(f"{prefix}1", 1)
        for _ in range(200):
            if await client.exists(f"{prefix}1") == 0:
                break
            await asyncio.sleep(0.005)
        assert await cache.get(1) is None
    finally:
        await client.delete(f"{prefix}1")
        await client.aclose()


async def test_a_garbled_redis_entry_reads_as_unknown() -> None:
    client = await connect_redis()
    prefix = f"lnvps_test_vm_state_{secrets.token_hex(4)}:"
    try:
        await client.set(f"{prefix}3", "not json")
        cache = RedisVmStateCache(client, key_prefix=prefix)
        assert await cache.get(3) is None
        await cache.set(4, RUNNING)
        assert await cache.get_many([3, 4]) == {4: RUNNING}
    finally:
        await client.delete(f"{prefix}3", f"{prefix}4")
        await client.aclose()
