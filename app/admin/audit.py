"""The admin audit trail: record each state-changing admin request with who made it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from domain.model import AdminAudit
from domain.redaction import redact
from ports.clock import Clock
from ports.storage import Page, UnitOfWorkFactory

#: a summary longer than this (as JSON) keeps only the body's top-level keys.
MAX_SUMMARY_CHARS = 4000


def summary_of(body: Any, params: Mapping[str, str]) -> dict[str, Any]:
    """A bounded JSON summary of a change: path parameters and the redacted request body.

    Over `MAX_SUMMARY_CHARS` the body is replaced by its top-level keys, so a huge request
    cannot fill the table.
    """
    out: dict[str, Any] = {"params": dict(params), "body": redact(body)}
    if len(json.dumps(out, default=str)) <= MAX_SUMMARY_CHARS:
        return out
    keys = sorted(str(k) for k in body)[:50] if isinstance(body, Mapping) else []
    return {"params": dict(params), "body_keys": keys, "truncated": True}


async def record_admin_change(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    user_id: int,
    method: str,
    path: str,
    resource: str,
    resource_id: str | None,
    summary: dict[str, Any],
    status: int,
) -> AdminAudit:
    """Append one audit record in its own transaction, after the change and its outcome."""
    async with uow_factory() as uow:
        entry = await uow.admin_audit.add(
            AdminAudit(
                id=0,
                user_id=user_id,
                at=clock.now(),
                method=method,
                path=path[:255],
                resource=resource[:64],
                resource_id=None if resource_id is None else resource_id[:64],
                summary=summary,
                status=status,
            )
        )
        await uow.commit()
    return entry


async def list_audit(
    uow_factory: UnitOfWorkFactory, limit: int, offset: int, user_id: int | None = None
) -> Page[AdminAudit]:
    async with uow_factory() as uow:
        return await uow.admin_audit.list_page(limit, offset, user_id=user_id)
