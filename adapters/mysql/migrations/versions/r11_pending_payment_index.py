"""r11 (ours): index a subscription's unpaid payments by expiry, for the renewal's reuse lookup."""

from __future__ import annotations

from alembic import op

revision = "lnvps_pending_payment_index"
down_revision: str | None = "lnvps_vm_resize_requested"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

#: Every renewal request looks for a live unpaid payment of its subscription
#: (`subscription_id = ? AND is_paid = 0 AND expires > now`). With only the single-column
#: indexes MariaDB read either all of the subscription's payments, paid and long expired
#: ones included, or every unpaid payment of every user (it chose `is_paid` on a young
#: table): a cost that grows with the history. This one reads only the live ones.
INDEX = "idx_subscription_payment_pending"


def upgrade() -> None:
    op.create_index(INDEX, "subscription_payment", ["subscription_id", "is_paid", "expires"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="subscription_payment")
