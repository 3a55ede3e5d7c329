"""r7 (ours): invoices, credit notes, their gapless counters, and the VAT-id-validated flag."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from adapters.mysql import types as t
from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss

revision = "lnvps_invoices"
down_revision: str | None = "lnvps_admin_audit_and_grants"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

OPTS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column(
            "billing_vat_validated", t.BitBool(), nullable=False, server_default=sa.text("0")
        ),
    )
    op.create_table(
        "invoice_counter",
        sa.Column("company_id", t.UInt, nullable=False, autoincrement=False),
        sa.Column("series", sa.String(length=16), nullable=False),
        sa.Column("last_seq", t.UInt, nullable=False),
        sa.PrimaryKeyConstraint("company_id", "series"),
        **OPTS,
    )
    op.create_table(
        "invoice",
        sa.Column("id", t.UBigInt, autoincrement=True, nullable=False),
        sa.Column("company_id", t.UInt, nullable=False),
        sa.Column("series", sa.String(length=16), nullable=False),
        sa.Column("seq", t.UInt, nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("payment_id", t.Binary32, nullable=False),
        sa.Column("user_id", t.UInt, nullable=False),
        sa.Column("issued_at", t.UtcDateTime(datetime_column=True), nullable=False),
        sa.Column("currency", sa.String(length=5), nullable=False),
        sa.Column("net", t.UBigInt, nullable=False),
        sa.Column("tax", t.UBigInt, nullable=False),
        sa.Column("total", t.UBigInt, nullable=False),
        sa.Column("content", t.JsonText(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name="fk_invoice_company"),
        sa.UniqueConstraint("company_id", "series", "seq", name="uq_invoice_number"),
        sa.UniqueConstraint("payment_id", name="uq_invoice_payment"),
        **OPTS,
    )
    op.create_index("idx_invoice_issued", "invoice", ["issued_at"])
    op.create_table(
        "credit_note",
        sa.Column("id", t.UBigInt, autoincrement=True, nullable=False),
        sa.Column("company_id", t.UInt, nullable=False),
        sa.Column("series", sa.String(length=16), nullable=False),
        sa.Column("seq", t.UInt, nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("invoice_id", t.UBigInt, nullable=False),
        sa.Column("issued_at", t.UtcDateTime(datetime_column=True), nullable=False),
        sa.Column("currency", sa.String(length=5), nullable=False),
        sa.Column("amount", t.UBigInt, nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name="fk_credit_note_company"),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoice.id"], name="fk_credit_note_invoice"),
        sa.UniqueConstraint("company_id", "series", "seq", name="uq_credit_note_number"),
        **OPTS,
    )
    op.create_index("idx_credit_note_invoice", "credit_note", ["invoice_id"])


#: What `downgrade` drops; it refuses while any of it holds data (data_guard).
DROPS = Drops(
    tables=("credit_note", "invoice", "invoice_counter"),
    columns={"users": ("billing_vat_validated",)},
)


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    op.drop_table("credit_note")  # its indexes go with it (MariaDB refuses to drop an
    op.drop_table("invoice")  # index a foreign key needs while the key exists)
    op.drop_table("invoice_counter")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("billing_vat_validated")
