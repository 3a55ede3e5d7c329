"""r18 (ours): `subscription.switched_off`, an admin's switch-off (domain.switch_off)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.mysql import types as t
from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss

revision = "lnvps_subscription_switched_off"
down_revision: str | None = "lnvps_ip_range_cidr_reusable"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    """Nullable, no default: no existing subscription was switched off by this rule (an
    inactive one from before is a cancelled one, whose own rules it keeps). No index: the
    lifecycle reads it on the rows its expiry range finds."""
    with op.batch_alter_table("subscription") as batch:
        batch.add_column(sa.Column("switched_off", t.USmallInt, nullable=True))


#: What `downgrade` drops; it refuses while any subscription is switched off (data_guard):
#: without the column such a one would be renewable again.
DROPS = Drops(columns={"subscription": ("switched_off",)})


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    with op.batch_alter_table("subscription") as batch:
        batch.drop_column("switched_off")
