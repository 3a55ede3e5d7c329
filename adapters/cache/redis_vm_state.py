"""The VM running-state cache in Redis (`vm_state:{id}` with a TTL), shared across processes."""

from __future__ import annotations

import json
from collections.abc import Collection
from decimal import Decimal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ports.vmhost import VmRunningState, VmRunState

KEY_PREFIX = "vm_state:"
DEFAULT_TTL_S = 300


class RedisVmStateCache:
    """A `VmStateCache` in Redis; entries expire after `ttl` seconds (the reference's redis.ttl).

    Usages are stored as decimal strings, never floats; a Redis outage reads as "not known"
    (the API then shows `unknown`) and a failed write is dropped, like a missed check.
    """

    def __init__(
        self, redis: aioredis.Redis, ttl: int = DEFAULT_TTL_S, key_prefix: str = KEY_PREFIX
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, got {ttl}")
        self._redis = redis
        self._ttl = ttl
        self._prefix = key_prefix

    async def get(self, vm_id: int) -> VmRunningState | None:
        try:
            raw = await self._redis.get(f"{self._prefix}{vm_id}")
        except RedisError:
            return None
        return _decode(raw)

    async def get_many(self, vm_ids: Collection[int]) -> dict[int, VmRunningState]:
        ids = sorted(set(vm_ids))
        if not ids:
            return {}
        try:
            raws = await self._redis.mget([f"{self._prefix}{i}" for i in ids])
        except RedisError:
            return {}
        found = {i: _decode(raw) for i, raw in zip(ids, raws, strict=True)}
        return {i: state for i, state in found.items() if state is not None}

    async def set(self, vm_id: int, state: VmRunningState) -> None:
        value = json.dumps(
            {
                "timestamp": state.timestamp,
                "state": state.state.value,
                "cpu_usage": str(state.cpu_usage),
                "mem_usage": str(state.mem_usage),
                "uptime": state.uptime,
                "net_in": state.net_in,
                "net_out": state.net_out,
                "disk_write": state.disk_write,
                "disk_read": state.disk_read,
            }
        )
        try:
            await self._redis.set(f"{self._prefix}{vm_id}", value, ex=self._ttl)
        except RedisError:
            return


def _decode(raw: bytes | str | None) -> VmRunningState | None:
    """A stored entry, or None when absent or unreadable."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return VmRunningState(
            timestamp=int(data["timestamp"]),
            state=VmRunState(data["state"]),
            cpu_usage=Decimal(data["cpu_usage"]),
            mem_usage=Decimal(data["mem_usage"]),
            uptime=int(data["uptime"]),
            net_in=int(data["net_in"]),
            net_out=int(data["net_out"]),
            disk_write=int(data["disk_write"]),
            disk_read=int(data["disk_read"]),
        )
    except (ValueError, KeyError, TypeError, ArithmeticError):
        return None
