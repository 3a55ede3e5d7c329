"""r8 (ours): account credit, a balance row per user and currency plus its append-only ledger."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from adapters.mysql import types as t
from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss

revision = "lnvps_credit_ledger"
down_revision: str | None = "lnvps_invoices"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

OPTS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "user_credit_balance",
        sa.Column("user_id", t.UInt, nullable=False),
        sa.Column("currency", sa.String(length=4), nullable=False),
        sa.Column("balance", t.UBigInt, nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("user_id", "currency"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_credit_balance_user"),
        **OPTS,
    )
    op.create_table(
        "user_credit_ledger",
        sa.Column("id", t.UBigInt, autoincrement=True, nullable=False),
        sa.Column("user_id", t.UInt, nullable=False),
        sa.Column("currency", sa.String(length=4), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reason", t.USmallInt, nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("note", sa.String(length=255), nullable=True),
        sa.Column("created", t.UtcDateTime(datetime_column=True), nullable=False),
        sa.Column("admin_id", t.UInt, nullable=True),
        sa.Column("payment_id", t.Binary32, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_credit_ledger_user"),
        sa.UniqueConstraint(
            "user_id", "currency", "reason", "reference", name="uq_credit_ledger_event"
        ),
        **OPTS,
    )
    op.create_index("idx_credit_ledger_user", "user_credit_ledger", ["user_id", "id"])
    op.create_index("idx_credit_ledger_reference", "user_credit_ledger", ["reference"])
    op.create_index("idx_credit_ledger_payment", "user_credit_ledger", ["payment_id"])


#: What `downgrade` drops; it refuses while any of it holds data (data_guard).
DROPS = Drops(tables=("user_credit_ledger", "user_credit_balance"))


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    op.drop_index("idx_credit_ledger_payment", table_name="user_credit_ledger")
    op.drop_index("idx_credit_ledger_reference", table_name="user_credit_ledger")
    op.drop_index("idx_credit_ledger_user", table_name="user_credit_ledger")
    op.drop_table("user_credit_ledger")
    op.drop_table("user_credit_balance")
