"""r20 (ours): VAT-free account credit: the part of each credit balance and of each ledger
entry that is money which bore no VAT when paid (`domain.account_credit.CreditParts`), and a
signed `invoice.net`: an invoice whose supply VAT-free credit paid declares that credit's VAT
while taking the credit off whole, its net then below 0 (`domain.invoice_content`)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from adapters.mysql import types as t
from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss

revision = "lnvps_vat_free_credit"
down_revision: str | None = "lnvps_credit_note_reference"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def _is_mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    """0 everywhere: all credit booked before is ordinary (net value), as it was. SQLite's
    integer column takes a sign already."""
    with op.batch_alter_table("user_credit_balance") as batch:
        batch.add_column(
            sa.Column("vat_free", t.UBigInt, nullable=False, server_default=sa.text("0"))
        )
    with op.batch_alter_table("user_credit_ledger") as batch:
        batch.add_column(
            sa.Column("vat_free", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
    if _is_mysql():
        op.alter_column(
            "invoice", "net", existing_type=t.UBigInt, type_=sa.BigInteger(), nullable=False
        )


def _vat_free_booked(conn: Connection) -> str | None:
    """Why the older schema cannot hold the credit as it is: a VAT-free part was booked.
    Dropped, that credit would count as ordinary net credit, worth its VAT more on a
    renewal than was paid, so it is refused even when data may be destroyed."""
    ledger = sa.table("user_credit_ledger", sa.column("vat_free"))
    found = conn.execute(sa.select(sa.literal(1)).where(ledger.c.vat_free != 0).limit(1))
    if found.first() is not None:
        return "VAT-free account credit was booked"
    invoice = sa.table("invoice", sa.column("net"))
    found = conn.execute(sa.select(sa.literal(1)).where(invoice.c.net < 0).limit(1))
    return "an invoice has a net below 0" if found.first() is not None else None


#: What `downgrade` drops: two columns whose only meaning is the VAT-free credit it refuses
#: to lose (a column of zeros is no data).
DROPS = Drops(unfit=_vat_free_booked)


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    if _is_mysql():
        op.alter_column(
            "invoice", "net", existing_type=sa.BigInteger(), type_=t.UBigInt, nullable=False
        )
    with op.batch_alter_table("user_credit_ledger") as batch:
        batch.drop_column("vat_free")
    with op.batch_alter_table("user_credit_balance") as batch:
        batch.drop_column("vat_free")
