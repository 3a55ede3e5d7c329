"""r17 (ours): an IP range's CIDR may be sold again once its range ended (no UNIQUE on cidr)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Connection, inspect

from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss

revision = "lnvps_ip_range_cidr_reusable"
down_revision: str | None = "lnvps_never_paid_scan_index"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

TABLE = "ip_range_subscription"
#: the name r1 gives the key (an adopted LNVPS database names it after its column)
UNIQUE = "uq_ip_range_subscription_cidr"

#: LNVPS made `ip_range_subscription.cidr` UNIQUE, but an ended range keeps its row (who held
#: which addresses, and when): with the key, a block once sold could never be sold again,
#: and a space would fill up for good as customers left. Which addresses are in use is the
#: allocator's to judge, under the space's lock (`app.billing.ip_allocation`); the plain
#: index `idx_ip_range_subscription_cidr` stays for look-ups.


def _unique_keys_on_cidr() -> list[str]:
    """The names of the unique keys on `cidr` alone (r1's, or an adopted database's)."""
    inspector = inspect(op.get_bind())
    names = {
        str(u["name"])
        for u in inspector.get_unique_constraints(TABLE)
        if u["column_names"] == ["cidr"] and u["name"]
    }
    names |= {
        str(i["name"])
        for i in inspector.get_indexes(TABLE)
        if i.get("unique") and i["column_names"] == ["cidr"] and i["name"]
    }
    return sorted(names)


def upgrade() -> None:
    names = _unique_keys_on_cidr()
    if op.get_bind().dialect.name == "sqlite":
        # a constraint of the table's own definition: SQLite drops it by copying the table
        with op.batch_alter_table(TABLE, recreate="always") as batch:
            for name in names:
                batch.drop_constraint(name, type_="unique")
        return
    for name in names:
        op.drop_index(name, table_name=TABLE)


def _sold_twice(conn: Connection) -> str | None:
    """Why the key cannot come back: a CIDR sold more than once (None: none is)."""
    cidr: sa.ColumnClause[str] = sa.column("cidr", sa.String)
    twice = sa.select(cidr).select_from(sa.table(TABLE)).group_by(cidr).having(sa.func.count() > 1)
    if conn.execute(twice.limit(1)).first() is None:
        return None
    return (
        "ip_range_subscription holds a CIDR sold more than once, which the UNIQUE key of the "
        "older schema cannot hold"
    )


#: nothing dropped; refused while a CIDR was sold twice, checked before any revision above
#: this one is undone (`downgrade_database`)
DROPS = Drops(unfit=_sold_twice)


def downgrade() -> None:
    """Refused while a CIDR was sold twice (the key could not hold): nothing is changed."""
    refuse_data_loss(revision, DROPS)
    with op.batch_alter_table(TABLE) as batch:
        batch.create_unique_constraint(UNIQUE, ["cidr"])
