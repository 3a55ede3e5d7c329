"""Jobs between API and worker, their reference JSON form, and the WorkQueue port (§9.1)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

#: jobs without fields: serialised as a bare string, e.g. `"CheckVms"`.
UNIT_KINDS = frozenset({"PatchHosts", "CheckVms", "CheckNostrDomains", "CheckSubscriptions"})
#: jobs with fields: serialised as `{"Kind": {fields}}`, e.g. `{"CheckVm":{"vm_id":1}}`.
STRUCT_KINDS = frozenset(
    {
        "CheckVm",
        "SpawnVm",
        "SendNotification",
        "SendAdminNotification",
        "BulkMessage",
        "DeleteVm",
        "StartVm",
        "StopVm",
        "ProcessVmUpgrade",
        "ConfigureVm",
        "AssignVmIp",
        "UnassignVmIp",
        "UpdateVmIp",
        "ProcessVmRefund",
        "CreateVm",
        "SendEmailVerification",
        "DownloadOsImages",
    }
)
JOB_KINDS = UNIT_KINDS | STRUCT_KINDS
#: a failure of these is acked and dropped; any other failed job is delivered again.
SKIPPABLE_KINDS = frozenset(
    {"CheckVms", "CheckVm", "CheckSubscriptions", "CheckNostrDomains", "StartVm", "StopVm"}
)


class InvalidJob(ValueError):
    """Not a job of the reference's `WorkJob` set, or not in its JSON form."""


def _known_kind(_: object, __: object, kind: str) -> None:
    if kind not in JOB_KINDS:
        raise InvalidJob(f"unknown job kind: {kind!r}")


def _payload(value: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidJob(f"job payload must be a mapping with string keys, got {value!r}")
    return dict(value)


@attrs.frozen
class Job:
    """One unit of work: its kind (the reference's variant name) and its fields."""

    kind: str = attrs.field(validator=_known_kind)
    payload: Mapping[str, Any] = attrs.field(factory=dict, converter=_payload)
    skippable: bool = attrs.field(init=False)

    @skippable.default
    def _skippable(self) -> bool:
        return self.kind in SKIPPABLE_KINDS

    def __attrs_post_init__(self) -> None:
        if self.kind in UNIT_KINDS and self.payload:
            raise InvalidJob(f"{self.kind} takes no fields, got {dict(self.payload)!r}")


def job_to_json(job: Job) -> str:
    """Compact JSON as serde writes it: `"CheckVms"` or `{"SpawnVm":{"vm_id":7}}`."""
    value: Any = job.kind if job.kind in UNIT_KINDS else {job.kind: dict(job.payload)}
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidJob(f"{job.kind} payload is not JSON: {error}") from error


def job_from_json(text: str | bytes) -> Job:
    """Parse the reference's JSON form; anything else is `InvalidJob`."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise InvalidJob(f"job is not JSON: {error}") from error
    if isinstance(value, str):
        if value not in UNIT_KINDS:
            raise InvalidJob(f"{value!r} is not a job without fields")
        return Job(value)
    if isinstance(value, dict) and len(value) == 1:
        [(kind, fields)] = value.items()
        if fields is None and kind in UNIT_KINDS:
            return Job(kind)
        if isinstance(fields, dict) and kind in STRUCT_KINDS:
            return Job(kind, fields)
    raise InvalidJob(f"not a job: {value!r}")


@attrs.frozen
class Delivery:
    """A job handed to a consumer; `id` is opaque and only means something to its queue."""

    job: Job
    id: str
    #: delivered before and not acked then (a crashed consumer or a failure being retried)
    redelivered: bool = False


class WorkQueue(Protocol):
    """At-least-once job delivery: a job stays owed until it is acked (or fails skippably)."""

    async def send(self, job: Job) -> str:
        """Enqueue a job; returns its id."""
        ...

    async def receive(self, max_jobs: int = 10, block_ms: int = 100) -> list[Delivery]:
        """Up to `max_jobs` deliveries, oldest first, waiting at most `block_ms` (0: no wait).

        Deliveries left un-acked longer than the queue's claim idle time come back first.
        """
        ...

    async def ack(self, delivery: Delivery) -> None:
        """The job is done; it is never delivered again."""
        ...

    async def fail(self, delivery: Delivery) -> None:
        """The job failed: dropped if skippable, otherwise delivered again later."""
        ...
