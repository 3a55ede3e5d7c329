"""r13 (ours): secrets written into the admin audit trail before they were recognised are masked."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from domain.redaction import redact

revision = "lnvps_audit_secrets_redacted"
down_revision: str | None = "lnvps_payment_interval_count"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

#: rows read and written per round
BATCH = 500
#: the fields the audit trail did not mask before this revision (a host's SSH private key, a
#: user's e-mail address, an SSH key's text): only summaries that mention one are read
NEWLY_SECRET = ("ssh_key", "email", "key_data")

_audit = sa.table("admin_audit", sa.column("id", sa.BigInteger), sa.column("summary", sa.Text))


def upgrade() -> None:
    _mask(op.get_bind())


def _masked(text: str | None) -> str | None:
    """The summary with its secrets masked, or None when it has none (or is not JSON)."""
    if text is None:
        return None
    try:
        summary: Any = json.loads(text)
    except ValueError:
        return None
    masked = redact(summary)
    if masked == summary:
        return None
    return json.dumps(masked, separators=(",", ":"), ensure_ascii=False)


def _mask(conn: sa.Connection) -> None:
    a = _audit.c
    mentions = sa.or_(*(a.summary.like(f"%{name}%") for name in NEWLY_SECRET))
    read = sa.select(a.id, a.summary).where(mentions).order_by(a.id).limit(BATCH)
    write = (
        sa.update(_audit)
        .where(a.id == sa.bindparam("row_id"))
        .values(summary=sa.bindparam("masked"))
    )
    last = 0
    while True:
        rows = conn.execute(read.where(a.id > last)).all()
        changed = [
            {"row_id": row.id, "masked": masked}
            for row in rows
            if (masked := _masked(row.summary)) is not None
        ]
        if changed:
            conn.execute(write, changed)
        if len(rows) < BATCH:
            return
        last = rows[-1].id


def downgrade() -> None:
    """Nothing to undo: what was masked is gone for good, as it should be."""
