"""r13 on SQLite and MariaDB: audit rows written before the trail masked a host's SSH private
key or a user's e-mail address get them masked (every row, across batches); others stay."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.migrations import R12_PAYMENT_INTERVAL_COUNT, R13_AUDIT_SECRETS_REDACTED
from adapters.mysql.schema_upgrade import downgrade_database, upgrade_database
from tests.contract.storage_backends import at

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----"
#: (summary as written before r13, as it reads after r13)
SUMMARIES: list[tuple[Any, Any]] = [
    (
        {"params": {"id": "3"}, "body": {"ssh_key": KEY, "name": "h"}},
        {"params": {"id": "3"}, "body": {"ssh_key": "***", "name": "h"}},
    ),
    (
        {"params": {}, "body": {"email": "a@example.com", "billing_name": "émile"}},
        {"params": {}, "body": {"email": "***", "billing_name": "émile"}},
    ),
    (
        {"params": {}, "body": {"nested": [{"key_data": "ssh-ed25519 AAAA"}]}},
        {"params": {}, "body": {"nested": [{"key_data": "***"}]}},
    ),
    # only named, never held: kept as written
    ({"params": {}, "body_keys": ["email", "ssh_key"], "truncated": True}, None),
    ({"params": {}, "body": {"ssh_key_id": 4, "name": "email me"}}, None),
    ({"params": {}, "body": {"api_token": "***"}}, None),
    (None, None),
]
#: more rows than one batch (500) that mention a newly secret field
MANY = 620


def _row(n: int, summary: Any) -> dict[str, Any]:
    return {
        "id": n + 1,
        "user_id": 1,
        "at": at(1),
        "method": "PATCH",
        "path": "/api/admin/v1/hosts/1",
        "resource": "hosts",
        "resource_id": "1",
        "summary": summary,
        "status": 200,
    }


async def _audit_at_r12(url: str) -> None:
    await upgrade_database(url, R12_PAYMENT_INTERVAL_COUNT)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            rows = [_row(n, before) for n, (before, _) in enumerate(SUMMARIES)]
            first = len(SUMMARIES)
            many = [{"body": {"ssh_key": f"{KEY}{n}"}} for n in range(MANY)]
            rows += [_row(first + n, summary) for n, summary in enumerate(many)]
            await conn.execute(sa.insert(tables.admin_audit), rows)
    finally:
        await engine.dispose()


async def _summaries(url: str) -> dict[int, str | None]:
    """Each row's summary text as stored."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            a = sa.table("admin_audit", sa.column("id"), sa.column("summary", sa.Text)).c
            rows = await conn.execute(sa.select(a.id, a.summary))
            return {row.id - 1: row.summary for row in rows}
    finally:
        await engine.dispose()


async def test_r13_masks_secrets_already_in_the_audit_trail(db_url: str) -> None:
    await _audit_at_r12(db_url)
    before = await _summaries(db_url)
    await upgrade_database(db_url, R13_AUDIT_SECRETS_REDACTED)
    after = await _summaries(db_url)
    for n, (_, masked) in enumerate(SUMMARIES):
        if masked is None:  # untouched, byte for byte
            assert after[n] == before[n]
        else:
            assert json.loads(after[n] or "") == masked
    first = len(SUMMARIES)
    assert all(after[first + n] == '{"body":{"ssh_key":"***"}}' for n in range(MANY))
    assert "PRIVATE KEY" not in "".join(text or "" for text in after.values())
    await downgrade_database(db_url, R12_PAYMENT_INTERVAL_COUNT)  # nothing comes back
    assert await _summaries(db_url) == after
