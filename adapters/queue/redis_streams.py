"""A work queue on a Redis stream with a consumer group, as the reference runs it (§9.1)."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from adapters.queue.wire import job_from_json, job_to_json
from ports.queue import Delivery, InvalidJob, Job

log = logging.getLogger(__name__)

JOB_FIELD = "job"
#: XAUTOCLAIM looks at up to 10 × count pending entries per call; this bounds the walk.
MAX_CLAIM_SCANS = 10


@attrs.define(eq=False, repr=False)
class RedisStreamsQueue:
    """XADD to `stream`; consumers of `group` read with XREADGROUP and ack with XACK.

    Before reading, entries pending longer than `claim_idle_ms` (their consumer crashed, or
    their job failed and is not skippable) are taken over with XAUTOCLAIM and returned alone,
    as the reference does. The group is created on first use (MKSTREAM, from `$`, like the
    reference: entries added before any group existed are not delivered). An entry that is
    not a job is logged and acked, where the reference would re-claim it forever.

    A counted failure (`fail(counted=True)`) adds one to the entry's field in the hash
    `failures_key` (`<stream>:failures`), read back into `Delivery.failures` when the entry
    is claimed again; ack removes the field. The stream's own delivery count (XPENDING) is
    not used: it also counts transient failures and crashed consumers, which must not bring
    a job nearer to being given up.

    Every worker process needs its own `consumer` name (the reference's single worker is
    `api-worker`). A job still running after `claim_idle_ms` can be claimed by another
    consumer, so handlers must be idempotent (lifecycle actions are claimed in storage).
    """

    _redis: aioredis.Redis
    _consumer: str = attrs.field(kw_only=True)
    _stream: str = attrs.field(default="worker", kw_only=True)
    _group: str = attrs.field(default="workers", kw_only=True)
    _claim_idle_ms: int = attrs.field(default=10_000, kw_only=True)
    _maxlen: int = attrs.field(default=1000, kw_only=True)
    _group_ready: bool = attrs.field(default=False, init=False)

    async def _ensure_group(self, *, again: bool = False) -> None:
        if self._group_ready and not again:
            return
        try:
            await self._redis.xgroup_create(self._stream, self._group, id="$", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._group_ready = True

    @property
    def failures_key(self) -> str:
        """The hash of counted failures per pending entry id."""
        return f"{self._stream}:failures"

    async def send(self, job: Job) -> str:
        await self._ensure_group()
        entry_id = await self._redis.xadd(
            self._stream, {JOB_FIELD: job_to_json(job)}, maxlen=self._maxlen, approximate=True
        )
        return _text(entry_id)

    async def receive(self, max_jobs: int = 10, block_ms: int = 100) -> list[Delivery]:
        if max_jobs < 1 or block_ms < 0:
            raise ValueError(f"need max_jobs >= 1 and block_ms >= 0, got {max_jobs}, {block_ms}")
        await self._ensure_group()
        try:
            return await self._receive(max_jobs, block_ms)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            await self._ensure_group(again=True)  # the stream or group was deleted meanwhile
            return await self._receive(max_jobs, block_ms)

    async def _receive(self, max_jobs: int, block_ms: int) -> list[Delivery]:
        claimed = await self._claim_idle(max_jobs)
        if claimed:
            return claimed
        streams = await self._redis.xreadgroup(
            self._group,
            self._consumer,
            {self._stream: ">"},
            count=max_jobs,
            block=block_ms or None,
        )
        entries: list[Any] = []
        if isinstance(streams, dict):  # RESP3
            for found in streams.values():
                entries.extend(found[0] if found and isinstance(found[0], list) else found)
        else:
            for _, found in streams or []:
                entries.extend(found)
        return await self._deliveries(entries, redelivered=False)

    async def _claim_idle(self, max_jobs: int) -> list[Delivery]:
        """Take over entries idle past the claim time, walking the whole pending list."""
        cursor: str | bytes = "0-0"
        for _ in range(MAX_CLAIM_SCANS):
            reply = await self._redis.xautoclaim(
                self._stream,
                self._group,
                self._consumer,
                min_idle_time=self._claim_idle_ms,
                start_id=cursor,
                count=max_jobs,
            )
            claimed = await self._deliveries(reply[1], redelivered=True)
            cursor = reply[0]
            if claimed or _text(cursor) == "0-0":
                return claimed
        return []

    async def _deliveries(self, entries: list[Any], *, redelivered: bool) -> list[Delivery]:
        deliveries = []
        for entry_id, fields in entries:
            delivery_id = _text(entry_id)
            try:
                if not fields:
                    raise InvalidJob("entry has no fields (deleted or trimmed)")
                raw = fields.get(JOB_FIELD, fields.get(JOB_FIELD.encode()))
                if raw is None:
                    raise InvalidJob(f"entry has no {JOB_FIELD!r} field")
                job = job_from_json(raw)
            except InvalidJob as error:
                log.warning("dropping stream entry %s: %s", delivery_id, error)
                await self._ack(delivery_id)
                continue
            deliveries.append(Delivery(job, delivery_id, redelivered))
        if not redelivered or not deliveries:  # a new entry has failed no delivery yet
            return deliveries
        counts = await self._redis.hmget(self.failures_key, [d.id for d in deliveries])
        return [
            attrs.evolve(d, failures=int(n)) if n is not None else d
            for d, n in zip(deliveries, counts, strict=True)
        ]

    async def ack(self, delivery: Delivery) -> None:
        await self._ack(delivery.id)

    async def _ack(self, delivery_id: str) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xack(self._stream, self._group, delivery_id)
            pipe.hdel(self.failures_key, delivery_id)
            await pipe.execute()

    async def fail(self, delivery: Delivery, *, counted: bool = True) -> None:
        """Skippable: ack. Otherwise leave it pending (re-claimed after the idle time), its
        failure counted if `counted`."""
        if delivery.job.skippable:
            await self.ack(delivery)
        elif counted:
            await self._redis.hincrby(self.failures_key, delivery.id, 1)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
