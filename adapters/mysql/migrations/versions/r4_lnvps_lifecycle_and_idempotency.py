"""r4 (ours): lifecycle marks (D15), idempotency keys (D11), lifecycle index, DATETIME expiry."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from adapters.mysql import types as t
from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss

revision = "lnvps_lifecycle_and_idempotency"
down_revision: str | None = "add_email_hash_20260615000000"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

OPTS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def _is_mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "lifecycle_mark",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("subscription_id", t.UInt, nullable=False),
        sa.Column("action", t.USmallInt, nullable=False),
        sa.Column("period_expires", t.UtcDateTime(datetime_column=True), nullable=False),
        sa.Column(
            "claimed_at",
            t.UtcDateTime(),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscription.id"],
            name="fk_lifecycle_mark_subscription",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "subscription_id", "action", "period_expires", name="uq_lifecycle_mark_period"
        ),
        **OPTS,
    )
    op.create_table(
        "idempotency_key",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("user_id", t.UInt, nullable=False),
        sa.Column("request_hash", t.Binary32, nullable=False),
        sa.Column("payment_id", t.Binary32, nullable=True),
        sa.Column(
            "created",
            t.UtcDateTime(),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_idempotency_key_user", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "key", name="uq_idempotency_key_user_key"),
        **OPTS,
    )
    op.create_index("idx_subscription_lifecycle", "subscription", ["is_active", "expires"])
    if _is_mysql():
        # TIMESTAMP ends 2038-01-19; renewals of up to 120 intervals (D6) go far beyond it.
        op.alter_column(
            "subscription",
            "expires",
            existing_type=t.UtcDateTime(),
            type_=t.UtcDateTime(datetime_column=True),
            existing_nullable=True,
            nullable=True,
        )


#: The range of the TIMESTAMP that `downgrade` turns `subscription.expires` back into (UTC).
TIMESTAMP_FIRST, TIMESTAMP_LAST = "1970-01-01 00:00:01", "2038-01-19 03:14:07"


def _expiry_beyond_timestamp(conn: Connection) -> str | None:
    """Why `subscription.expires` cannot go back to a TIMESTAMP: an expiry outside its range,
    e.g. paid beyond 2038 (D6 allows 120 intervals); None: every expiry fits. MariaDB only
    (SQLite keeps the column as it is)."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return None
    expires = sa.column("expires", sa.DateTime)
    outside = sa.or_(expires < TIMESTAMP_FIRST, expires > TIMESTAMP_LAST)
    stmt = sa.select(expires).select_from(sa.table("subscription")).where(outside).limit(1)
    if conn.execute(stmt).first() is None:
        return None
    return (
        "subscription.expires holds a time outside the TIMESTAMP range (1970-01-01 to "
        "2038-01-19 UTC) the older schema stores it in"
    )


#: What `downgrade` drops; it refuses while any of it holds data (data_guard), and, whatever
#: `destroy_data` says, while an expiry would not fit the TIMESTAMP (checked before any
#: revision above this one is undone, `downgrade_database`).
DROPS = Drops(tables=("idempotency_key", "lifecycle_mark"), unfit=_expiry_beyond_timestamp)


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    if _is_mysql():
        op.alter_column(
            "subscription",
            "expires",
            existing_type=t.UtcDateTime(datetime_column=True),
            type_=t.UtcDateTime(),
            existing_nullable=True,
            nullable=True,
        )
    op.drop_index("idx_subscription_lifecycle", table_name="subscription")
    op.drop_table("idempotency_key")
    op.drop_table("lifecycle_mark")
