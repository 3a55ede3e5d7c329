"""r14 (ours): settlements the Lightning intake could not complete, kept for the operator."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from adapters.mysql import types as t
from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss

revision = "lnvps_settlement_problems"
down_revision: str | None = "lnvps_audit_secrets_redacted"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

OPTS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "settlement_problem",
        sa.Column("id", t.UBigInt, autoincrement=True, nullable=False),
        sa.Column("payment_id", t.Binary32, nullable=False),
        sa.Column("settle_index", t.UBigInt, nullable=False),
        sa.Column("amount_paid_msat", t.UBigInt, nullable=False),
        sa.Column("error", sa.String(length=64), nullable=False),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.Column("created", t.UtcDateTime(datetime_column=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("payment_id", name="uq_settlement_problem_payment"),
        **OPTS,
    )


#: What `downgrade` drops; it refuses while any of it holds data (data_guard).
DROPS = Drops(tables=("settlement_problem",))


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    op.drop_table("settlement_problem")
