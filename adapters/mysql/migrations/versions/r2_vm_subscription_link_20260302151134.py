"""r2: LNVPS migration 20260302151134_vm_subscription_link (schema.md §0.1, §9 last paragraph)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.mysql import types as t
from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss

revision = "vm_subscription_link_20260302151134"
down_revision: str | None = "legacy_20260225000001"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    # Existing subscriptions become 1 Month, not yet set up.
    with op.batch_alter_table("subscription") as batch:
        batch.add_column(
            sa.Column("is_setup", t.BitBool(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(
            sa.Column("interval_amount", t.UInt, nullable=False, server_default=sa.text("1"))
        )
        batch.add_column(
            sa.Column("interval_type", t.USmallInt, nullable=False, server_default=sa.text("1"))
        )
    with op.batch_alter_table("subscription_payment") as batch:
        batch.add_column(sa.Column("time_value", t.UBigInt, nullable=True))
        batch.add_column(sa.Column("metadata", t.JsonText(), nullable=True))
    # Every VM gets a NULL link; `expires` keeps its values but becomes nullable, and
    # `auto_renewal_enabled` gets DEFAULT 0 so inserts that no longer write it succeed.
    with op.batch_alter_table("vm") as batch:
        batch.add_column(sa.Column("subscription_line_item_id", t.UInt, nullable=True))
        batch.create_index("idx_vm_subscription_line_item", ["subscription_line_item_id"])
        batch.create_foreign_key(
            "fk_vm_subscription_line_item",
            "subscription_line_item",
            ["subscription_line_item_id"],
            ["id"],
        )
        batch.alter_column(
            "expires",
            existing_type=t.UtcDateTime(),
            nullable=True,
            server_default=None,
        )
        batch.alter_column(
            "auto_renewal_enabled",
            existing_type=t.BitBool(),
            existing_nullable=False,
            server_default=sa.text("0"),
        )


#: What `downgrade` drops; it refuses while any of it holds data (data_guard).
DROPS = Drops(
    columns={
        "vm": ("subscription_line_item_id",),
        "subscription_payment": ("metadata", "time_value"),
        "subscription": ("interval_type", "interval_amount", "is_setup"),
    }
)


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    with op.batch_alter_table("vm") as batch:
        batch.drop_constraint("fk_vm_subscription_line_item", type_="foreignkey")
        batch.drop_index("idx_vm_subscription_line_item")
        batch.drop_column("subscription_line_item_id")
        batch.alter_column(
            "expires", existing_type=t.UtcDateTime(), existing_nullable=True, nullable=False
        )
        batch.alter_column(
            "auto_renewal_enabled",
            existing_type=t.BitBool(),
            existing_nullable=False,
            existing_server_default=sa.text("0"),
            server_default=None,
        )
    with op.batch_alter_table("subscription_payment") as batch:
        batch.drop_column("metadata")
        batch.drop_column("time_value")
    with op.batch_alter_table("subscription") as batch:
        batch.drop_column("interval_type")
        batch.drop_column("interval_amount")
        batch.drop_column("is_setup")
