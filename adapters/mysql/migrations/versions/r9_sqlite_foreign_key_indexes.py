"""r9 (ours): on SQLite, index the foreign-key columns that MariaDB/MySQL index by themselves."""

from __future__ import annotations

from alembic import op

revision = "lnvps_sqlite_foreign_key_indexes"
down_revision: str | None = "lnvps_credit_ledger"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

#: (table, column) of every foreign key that no index of the schema leads with. InnoDB
#: creates an index for each foreign key it cannot serve from an existing one; SQLite does
#: not, so without these a VM's IP assignments, a user's VMs or SSH keys, a host's VMs and
#: disks were read with a full table scan there, a cost that grows with the table.
FOREIGN_KEY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("access_policy", "router_id"),
    ("admin_role_assignments", "assigned_by"),
    ("subscription", "company_id"),
    ("user_ssh_key", "user_id"),
    ("vm_host_region", "company_id"),
    ("ip_range", "access_policy_id"),
    ("ip_range", "region_id"),
    ("vm_custom_pricing", "region_id"),
    ("vm_host", "region_id"),
    ("vm_template", "region_id"),
    ("vm_template", "cost_plan_id"),
    ("vm_custom_pricing_disk", "pricing_id"),
    ("vm_custom_template", "pricing_id"),
    ("vm_host_disk", "host_id"),
    ("vm", "template_id"),
    ("vm", "disk_id"),
    ("vm", "user_id"),
    ("vm", "image_id"),
    ("vm", "ssh_key_id"),
    ("vm", "custom_template_id"),
    ("vm", "host_id"),
    ("vm_history", "initiated_by_user"),
    ("vm_ip_assignment", "vm_id"),
    ("vm_ip_assignment", "ip_range_id"),
    ("vm_payment", "vm_id"),
)


def index_name(table: str, column: str) -> str:
    return f"ix_fk_{table}_{column}"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # the server made these indexes with the foreign keys
    for table, column in FOREIGN_KEY_COLUMNS:
        op.create_index(index_name(table, column), table, [column])


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, column in reversed(FOREIGN_KEY_COLUMNS):
        op.drop_index(index_name(table, column), table_name=table)
