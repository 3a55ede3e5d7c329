"""r10 (ours): `vm.resize_requested`, a paid upgrade the host has not been resized to yet."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.mysql import types as t
from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss

revision = "lnvps_vm_resize_requested"
down_revision: str | None = "lnvps_sqlite_foreign_key_indexes"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    # nullable, no default: a legacy or existing VM has no resize outstanding
    with op.batch_alter_table("vm") as batch:
        batch.add_column(
            sa.Column("resize_requested", t.UtcDateTime(datetime_column=True), nullable=True)
        )
        batch.create_index("idx_vm_resize_requested", ["resize_requested"])


#: What `downgrade` drops; it refuses while any of it holds data (data_guard).
DROPS = Drops(columns={"vm": ("resize_requested",)})


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    with op.batch_alter_table("vm") as batch:
        batch.drop_index("idx_vm_resize_requested")
        batch.drop_column("resize_requested")
