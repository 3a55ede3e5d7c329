"""r3: LNVPS migration 20260615000000_add_email_hash (users.email_hash + index)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.mysql import types as t
from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss

revision = "add_email_hash_20260615000000"
down_revision: str | None = "vm_subscription_link_20260302151134"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email_hash", t.Binary32, nullable=True))
        batch.create_index("idx_users_email_hash", ["email_hash"])


#: What `downgrade` drops; it refuses while any of it holds data (data_guard).
DROPS = Drops(columns={"users": ("email_hash",)})


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    with op.batch_alter_table("users") as batch:
        batch.drop_index("idx_users_email_hash")
        batch.drop_column("email_hash")
