"""r12 (ours): `subscription_payment.interval_count`, so the reuse lookup narrows on an index."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters.mysql.interval_column import stored_interval_count
from adapters.mysql.migrations.data_guard import NOTHING, refuse_data_loss

revision = "lnvps_payment_interval_count"
down_revision: str | None = "lnvps_pending_payment_index"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

#: A renewal looks for a pending payment of its subscription with the same interval count,
#: and a subscription may hold one live invoice per count (1..120) and method: narrowed by
#: the metadata text, each of those rows was read on every renewal. With the count in a
#: column and this index, the rows of other counts are passed over inside the index. r11's
#: index stays: the reads of every pending payment of a subscription (no count) would walk
#: this one's expired entries too, a cost that grows with the history.
INDEX = "idx_subscription_payment_pending_count"
COLUMNS = ["subscription_id", "is_paid", "interval_count", "expires"]
#: rows read and written per round of the back-fill
BATCH = 1000

_payment = sa.table(
    "subscription_payment",
    sa.column("id", sa.LargeBinary),
    sa.column("metadata", sa.Text),
    sa.column("interval_count", sa.Integer),
)


def upgrade() -> None:
    with op.batch_alter_table("subscription_payment") as batch:
        batch.add_column(sa.Column("interval_count", sa.Integer, nullable=True))
    _fill(op.get_bind())
    op.create_index(INDEX, "subscription_payment", COLUMNS)


def _fill(conn: sa.Connection) -> None:
    """Set the column of every row whose metadata mentions the key, in batches by id (a row
    left NULL is read by its metadata text: never wrong, only slower)."""
    p = _payment.c
    mentions = p.metadata.like("%intervals%")
    read = sa.select(p.id, p.metadata).where(mentions).order_by(p.id).limit(BATCH)
    write = (
        sa.update(_payment)
        .where(p.id == sa.bindparam("payment_id"))
        .values(interval_count=sa.bindparam("count"))
    )
    last: bytes | None = None
    while True:
        query = read if last is None else read.where(p.id > last)
        rows = conn.execute(query).all()
        counts = [
            {"payment_id": row.id, "count": count}
            for row in rows
            if (count := stored_interval_count(row.metadata)) is not None
        ]
        if counts:
            conn.execute(write, counts)
        if len(rows) < BATCH:
            return
        last = rows[-1].id


#: `interval_count` is derived from `metadata` (upgrade fills it again): dropping it loses
#: nothing, so the downgrade needs no guard (data_guard).
DROPS = NOTHING


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    op.drop_index(INDEX, table_name="subscription_payment")
    with op.batch_alter_table("subscription_payment") as batch:
        batch.drop_column("interval_count")
