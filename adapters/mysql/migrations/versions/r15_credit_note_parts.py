"""r15 (ours): `credit_note.net` and `.tax`, the VAT a credit note corrects, fixed at issue."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.mysql import types as t
from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss

revision = "lnvps_credit_note_parts"
down_revision: str | None = "lnvps_settlement_problems"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    """Nullable: a note issued before keeps NULL (it is read by its invoice, as before)."""
    with op.batch_alter_table("credit_note") as batch:
        batch.add_column(sa.Column("net", t.UBigInt, nullable=True))
        batch.add_column(sa.Column("tax", t.UBigInt, nullable=True))


#: What `downgrade` drops; it refuses while any of it holds data (data_guard).
DROPS = Drops(columns={"credit_note": ("net", "tax")})


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    with op.batch_alter_table("credit_note") as batch:
        batch.drop_column("tax")
        batch.drop_column("net")
