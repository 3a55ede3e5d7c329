"""Typed jobs to and from the reference's JSON form (serde's externally tagged enum, §9.1)."""

from __future__ import annotations

import json
from typing import Any

import attrs

from domain.errors import DomainError
from domain.upgrade import UpgradeConfig
from ports.jobs import JOB_TYPES, UNIT_KINDS, InvalidJob, Job


def _field_json(value: object) -> object:
    if isinstance(value, UpgradeConfig):
        cfg = value
        return {"new_cpu": cfg.new_cpu, "new_memory": cfg.new_memory, "new_disk": cfg.new_disk}
    return value


def job_to_json(job: Job) -> str:
    """Compact JSON as serde writes it: `"CheckVms"` or `{"SpawnVm":{"vm_id":7}}`.

    Every field is written, None as null, as the reference's serde derive does; a field of
    ours the reference does not know (metadata `ours`) is left out when None.
    """
    if JOB_TYPES.get(job.kind) is not type(job):
        raise InvalidJob(f"{job.kind} is not a job of the reference's set")
    if job.kind in UNIT_KINDS:
        value: Any = job.kind
    else:
        fields = attrs.fields(type(job))
        value = {
            job.kind: {
                f.name: _field_json(getattr(job, f.name))
                for f in fields
                if getattr(job, f.name) is not None or not f.metadata.get("ours")
            }
        }
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:  # pragma: no cover - typed fields are JSON
        raise InvalidJob(f"{job.kind} is not JSON: {error}") from error


def _build(kind: str, fields: dict[str, Any]) -> Job:
    """The job of `kind` from its JSON fields; unknown fields are ignored, missing
    optional ones are None (serde's defaults); a wrong type is `InvalidJob`."""
    cls = JOB_TYPES[kind]
    known = {f.name for f in attrs.fields(cls)}
    args = {name: value for name, value in fields.items() if name in known}
    if isinstance(args.get("config"), dict):
        try:
            args["config"] = UpgradeConfig.from_json(args["config"])
        except DomainError as error:
            raise InvalidJob(f"{kind} config: {error.message}") from error
    try:
        return cls(**args)
    except TypeError as error:  # a required field is missing
        raise InvalidJob(f"{kind}: {error}") from error


def job_from_json(text: str | bytes) -> Job:
    """Parse the reference's JSON form; anything else is `InvalidJob`."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise InvalidJob(f"job is not JSON: {error}") from error
    if isinstance(value, str):
        if value not in UNIT_KINDS:
            raise InvalidJob(f"{value!r} is not a job without fields")
        return JOB_TYPES[value]()
    if isinstance(value, dict) and len(value) == 1:
        [(kind, fields)] = value.items()
        if fields is None and kind in UNIT_KINDS:
            return JOB_TYPES[kind]()
        if isinstance(fields, dict) and kind in JOB_TYPES and kind not in UNIT_KINDS:
            return _build(kind, fields)
    raise InvalidJob(f"not a job: {value!r}")
