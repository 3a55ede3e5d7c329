"""r5 (ours): worker leases (host calls outside row locks), cursors, unpaid-payment index."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from adapters.mysql import types as t
from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss

revision = "lnvps_worker_leases_and_cursors"
down_revision: str | None = "lnvps_lifecycle_and_idempotency"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

OPTS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "worker_lease",
        sa.Column("name", sa.String(length=191), nullable=False),
        sa.Column("holder", sa.String(length=32), nullable=False),
        sa.Column("claimed_at", t.UtcDateTime(datetime_column=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
        **OPTS,
    )
    op.create_table(
        "worker_cursor",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", t.UBigInt, nullable=False),
        sa.PrimaryKeyConstraint("name"),
        **OPTS,
    )
    op.create_index(
        "idx_subscription_payment_unpaid_method",
        "subscription_payment",
        ["payment_method", "is_paid", "created"],
    )


#: What `downgrade` drops; it refuses while any of it holds data (data_guard).
DROPS = Drops(tables=("worker_cursor", "worker_lease"))


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    op.drop_index("idx_subscription_payment_unpaid_method", table_name="subscription_payment")
    op.drop_table("worker_cursor")
    op.drop_table("worker_lease")
