"""r16 (ours): index subscriptions by (expires, created), for the never-paid cleanup's scan."""

from __future__ import annotations

from alembic import op

revision = "lnvps_never_paid_scan_index"
down_revision: str | None = "lnvps_credit_note_parts"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

#: The worker cancels never-paid IP-range orders made within a lookback window
#: (`expires IS NULL AND created >= ? AND created < ?`). Without it the scan read every
#: never-paid subscription ever made (VM orders and cancelled ones too), a cost that grows
#: with the history; this reads one index range, the orders of the window.
INDEX = "idx_subscription_never_paid"


def upgrade() -> None:
    op.create_index(INDEX, "subscription", ["expires", "created"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="subscription")
