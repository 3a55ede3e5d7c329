"""r19 (ours): `credit_note.reference`, an admin's request reference: a repeat issues no second
note (`app.billing.invoicing.issue_credit_note`)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss

revision = "lnvps_credit_note_reference"
down_revision: str | None = "lnvps_subscription_switched_off"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

UNIQUE = "uq_credit_note_invoice_reference"


def upgrade() -> None:
    """Nullable: notes issued before, and those issued without a reference, have NULL (which
    the unique key lets repeat)."""
    with op.batch_alter_table("credit_note") as batch:
        batch.add_column(sa.Column("reference", sa.String(100), nullable=True))
        batch.create_unique_constraint(UNIQUE, ["invoice_id", "reference"])


#: What `downgrade` drops; it refuses while a note has a reference (data_guard).
DROPS = Drops(columns={"credit_note": ("reference",)})


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    with op.batch_alter_table("credit_note") as batch:
        batch.drop_constraint(UNIQUE, type_="unique")
        batch.drop_column("reference")
