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
#: XAUTOCLAIM calls (round trips) a receive makes at most before reading new entries; as
#: each looks at up to 10 × count pending entries (count = max_jobs), a receive walks at most
#: 50 × max_jobs of them: 50 for the worker's one-job receive.
MAX_CLAIM_CALLS = 5

#: Lua: `trim_unneeded(stream, maxlen)` deletes, once the stream is longer than `maxlen`,
#: the entries no group needs any more: XTRIM MINID below the earliest of each group's
#: first unread entry (the first after its last-delivered-id, XINFO GROUPS) and oldest
#: pending entry (XPENDING - + 1), so an entry not yet delivered to a group, or delivered
#: and not acked, is never deleted; every entry if no group needs any. No group at all:
#: nothing is trimmed (a group made later from `0` would read every entry). Ids are
#: compared as two whole numbers, digit strings (a sequence may exceed Lua's exact range).
_TRIM_UNNEEDED = """
local function id_before(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  if a_ms ~= b_ms then
    if #a_ms ~= #b_ms then return #a_ms < #b_ms end
    return a_ms < b_ms
  end
  if #a_seq ~= #b_seq then return #a_seq < #b_seq end
  return a_seq < b_seq
end

local function trim_unneeded(stream, maxlen)
  if redis.call('XLEN', stream) <= maxlen then
    return 0
  end
  local groups = redis.call('XINFO', 'GROUPS', stream)
  if #groups == 0 then
    return 0
  end
  local bound = nil
  for _, info in ipairs(groups) do
    local group = {}
    for k = 1, #info, 2 do
      group[info[k]] = info[k + 1]
    end
    local needed = {}
    local unread = redis.call('XRANGE', stream, '(' .. group['last-delivered-id'], '+', 'COUNT', 1)
    if #unread > 0 then
      needed[1] = unread[1][1]
    end
    if group['pending'] > 0 then
      needed[#needed + 1] = redis.call('XPENDING', stream, group['name'], '-', '+', 1)[1][1]
    end
    for _, id in ipairs(needed) do
      if bound == nil or id_before(id, bound) then
        bound = id
      end
    end
  end
  if bound == nil then
    return redis.call('XTRIM', stream, 'MAXLEN', '~', 0)
  end
  return redis.call('XTRIM', stream, 'MINID', '~', bound)
end
"""

#: KEYS: the stream, its failures hash; ARGV: group, entry id, the entry's passing field,
#: the stream's maxlen, the job field, and optionally the follow-up job's JSON. XACK, and
#: only if that took the entry off: XADD of the follow-up (`ack(then=...)`) and the trim of
#: the entries no group needs; one atomic step.
_ACK = (
    _TRIM_UNNEEDED
    + """
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2], ARGV[3])
if acked == 1 then
  if ARGV[6] then
    redis.call('XADD', KEYS[1], '*', ARGV[5], ARGV[6])
  end
  trim_unneeded(KEYS[1], tonumber(ARGV[4]))
end
return acked
"""
)

#: KEYS: the stream, its failures hash; ARGV: group, entry id, the field to raise. Counts a
#: failure only while the entry is pending in the group: one acked meanwhile by another
#: consumer (a slow consumer failing a job already claimed and done elsewhere) would
#: otherwise leave a field that no ack removes any more.
_COUNT_FAILURE = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then
  return 0
end
return redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
"""

#: KEYS: the stream; ARGV: group, entry id, consumer. Resets the entry's idle time (XCLAIM
#: JUSTID: no delivery counted) only while this consumer holds it: one already claimed by
#: another consumer is not taken back (both would run it), nor an acked one claimed again.
_KEEP = """
local held = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #held == 0 or held[1][2] ~= ARGV[3] then
  return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return 1
"""


@attrs.define(eq=False, repr=False)
class RedisStreamsQueue:
    """XADD to `stream`; consumers of `group` read with XREADGROUP and ack with XACK.

    Before reading, entries pending longer than `claim_idle_ms` (their consumer crashed, or
    their job failed and is not skippable) are taken over with XAUTOCLAIM and returned alone,
    as the reference does. The walk of the pending list goes on from receive to receive (a
    cursor kept in the queue object, wrapping to the start at the end), at most
    `MAX_CLAIM_CALLS` calls each, so an idle entry behind any number of entries that are not
    idle (a down host's jobs, re-claimed for ever) is reached within a bounded number of
    receives: those in between that claim nothing walk 10 × `MAX_CLAIM_CALLS` × max_jobs
    entries each, and one that claims moves the cursor past what it claimed. XAUTOCLAIM
    claims at most max_jobs, all handed back (or acked if not a job), so no entry is left
    owned here, its idle time reset, without being run.

    The group is created on first use (MKSTREAM), and made again when a read finds it gone
    (NOGROUP), both times from the stream's start (`0`), not from `$` as the reference does:
    a stream that exists without the group was made by a send's XADD after the old one was
    lost (Redis restarted without persistence, or the key evicted) while some process still
    thought the group was there, so every entry in it is a job nobody has read (a paid VM's
    `SpawnVm`); from `$` they would be skipped for ever. The one way to replay read jobs is
    to destroy the group by hand and keep the stream. An entry that is not a job is logged
    and acked, where the reference would re-claim it forever.

    A failure adds one to a field of the entry in the hash `failures_key`
    (`<stream>:failures`): `<id>` if counted (`fail(counted=True)`), `<id>:passing` if not;
    both are read back into `Delivery.failures` and `Delivery.passing` when the entry is
    claimed again. Whoever acks the entry removes them; a failure of an entry no longer
    pending (acked by another consumer meanwhile) is not recorded, and the fields of an
    entry deleted from the stream while pending (by hand, or trimmed by another program's
    XADD MAXLEN) are removed when XAUTOCLAIM drops it from the pending list.
    `Delivery.deliveries` is the stream's own delivery count (XPENDING's `times_delivered`,
    which XREADGROUP sets to 1 and XAUTOCLAIM raises on every claim): it counts a delivery
    durably the moment it is handed out, so the ones whose consumer died before it could ack
    or fail are the difference (`Delivery.crashed`).

    The claim walk's cursor lives in this object only, not in Redis: a restarted worker (or
    any new queue object) walks from `0-0` again. Nothing is missed for it: the walk reaches
    every idle entry within the same bounded number of receives as after a wrap to the
    start; only entries near the start may be claimed a little before ones further on.

    The stream is trimmed by the ack that takes an entry off (the one moment an entry can
    stop being needed), in the ack's own Lua script, and only once the stream holds more
    than `maxlen` entries: then every entry that all groups have read and acked goes
    (XTRIM MINID `~`, whole stream nodes, so up to `stream-node-max-entries`, 100, more may
    stay). An entry waiting to be read or pending (read, not acked) is never trimmed,
    however many there are: a backlog while the workers are down outgrows `maxlen` and is
    trimmed back once worked off. Below `maxlen` an ack costs one XLEN more; above it, one
    XINFO GROUPS and, per group, an XRANGE of its first unread entry and an XPENDING of its
    oldest pending one, whatever the stream's length. A send does not trim: XADD with
    MAXLEN would delete the oldest entries whatever their state (jobs lost), and the
    entries a send could free are freed by the acks anyway. A stream consumed only by
    another program's workers, which ack without this script, is not trimmed.

    Every worker process needs its own `consumer` name (the reference's single worker is
    `api-worker`). A running job's consumer keeps its entry (`keep`: XCLAIM JUSTID to
    itself, which resets the idle time without counting a delivery, in a script that first
    checks the entry is still its own), so only a dead consumer's entries are claimed. One
    whose keeps stop (its event loop blocked, Redis unreachable) for `claim_idle_ms` can
    still be claimed while it runs, so handlers stay idempotent (lifecycle actions are
    claimed in storage).
    """

    _redis: aioredis.Redis
    _consumer: str = attrs.field(kw_only=True)
    _stream: str = attrs.field(default="worker", kw_only=True)
    _group: str = attrs.field(default="workers", kw_only=True)
    _claim_idle_ms: int = attrs.field(default=10_000, kw_only=True)
    #: the length above which an ack trims the entries no group needs any more
    _maxlen: int = attrs.field(default=1000, kw_only=True)
    _group_ready: bool = attrs.field(default=False, init=False)
    _claim_cursor: str = attrs.field(default="0-0", init=False)

    async def _ensure_group(self, *, again: bool = False) -> None:
        if self._group_ready and not again:
            return
        try:
            await self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        else:
            if again:
                log.warning(
                    "consumer group %s of stream %s was gone (Redis lost its data?): made "
                    "again, reading the stream from its start",
                    self._group,
                    self._stream,
                )
        self._group_ready = True
        if again:
            self._claim_cursor = "0-0"  # the ids of a stream made again start over

    @property
    def claim_idle_ms(self) -> int:
        return self._claim_idle_ms

    @property
    def failures_key(self) -> str:
        """The hash of each pending entry's failures: counted (`<id>`) and passing."""
        return f"{self._stream}:failures"

    async def send(self, job: Job) -> str:
        await self._ensure_group()
        entry_id = await self._redis.xadd(self._stream, {JOB_FIELD: job_to_json(job)})
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
        """Take over up to `max_jobs` entries idle past the claim time, walking on from where
        the last receive stopped; a walk that reaches the end starts again from `0-0`, once
        (a walk begun at `0-0` that reaches the end has seen the whole list)."""
        from_top = self._claim_cursor == "0-0"
        for _ in range(MAX_CLAIM_CALLS):
            reply = await self._redis.xautoclaim(
                self._stream,
                self._group,
                self._consumer,
                min_idle_time=self._claim_idle_ms,
                start_id=self._claim_cursor,
                count=max_jobs,  # never claim more than this receive hands back
            )
            self._claim_cursor = _text(reply[0])
            if len(reply) > 2 and reply[2]:  # deleted while pending: dropped by XAUTOCLAIM
                await self._forget([_text(i) for i in reply[2]])
            claimed = await self._deliveries(reply[1], redelivered=True)
            if claimed:
                return claimed
            if self._claim_cursor == "0-0":
                if from_top:
                    return []
                from_top = True
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
        if not redelivered or not deliveries:  # a new entry: delivered once, failed never
            return deliveries
        return await self._counted(deliveries)

    async def _counted(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Claimed deliveries with their failures and their delivery count (this claim
        included); an entry acked meanwhile by a slow consumer has no count: 1 is taken."""
        ids = [d.id for d in deliveries]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self.failures_key, ids + [_passing(i) for i in ids])
            for entry_id in ids:
                pipe.xpending_range(self._stream, self._group, min=entry_id, max=entry_id, count=1)
            [counts, *pending] = await pipe.execute()
        n = len(ids)
        return [
            attrs.evolve(
                d,
                failures=int(counts[k] or 0),
                passing=int(counts[n + k] or 0),
                deliveries=int(found[0]["times_delivered"]) if found else 1,
            )
            for k, (d, found) in enumerate(zip(deliveries, pending, strict=True))
        ]

    async def ack(self, delivery: Delivery, *, then: Job | None = None) -> bool:
        return await self._ack(delivery.id, then)

    async def _forget(self, entry_ids: list[str]) -> None:
        """Remove the failure fields of entries that are gone from the pending list."""
        await self._redis.hdel(self.failures_key, *entry_ids, *map(_passing, entry_ids))

    async def _ack(self, delivery_id: str, then: Job | None = None) -> bool:
        follow_up = () if then is None else (job_to_json(then),)
        acked = await self._redis.eval(
            _ACK,
            2,
            self._stream,
            self.failures_key,
            self._group,
            delivery_id,
            _passing(delivery_id),
            str(self._maxlen),
            JOB_FIELD,
            *follow_up,
        )
        return bool(acked)

    async def keep(self, delivery: Delivery) -> bool:
        held = await self._redis.eval(
            _KEEP, 1, self._stream, self._group, delivery.id, self._consumer
        )
        return bool(held)

    async def fail(self, delivery: Delivery, *, counted: bool = True) -> None:
        """Skippable: ack. Otherwise leave it pending (re-claimed after the idle time), its
        failure recorded as counted or passing."""
        if delivery.job.skippable:
            await self.ack(delivery)
        else:
            field = delivery.id if counted else _passing(delivery.id)
            await self._redis.eval(
                _COUNT_FAILURE, 2, self._stream, self.failures_key, self._group, delivery.id, field
            )


def _passing(entry_id: str) -> str:
    """The field of `failures_key` counting an entry's transient failures."""
    return f"{entry_id}:passing"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
