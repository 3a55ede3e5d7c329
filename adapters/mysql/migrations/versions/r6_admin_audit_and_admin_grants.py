"""r6 (ours): the admin audit trail, and the seeded `admin` role's grants as api.md §4.2 lists.

r1 seeded `admin` with far less than the §4.2 table (VMs, payments, pricing, templates only).
This revision adds the missing grants to the system role named `admin`, on fresh and existing
databases alike; the downgrade removes exactly the grants it added. Codes are written out here
(not read from `domain.enums`) so the revision stays what it was when it shipped.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from adapters.mysql import types as t
from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss

revision = "lnvps_admin_audit_and_grants"
down_revision: str | None = "lnvps_worker_leases_and_cursors"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

OPTS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

_ALL = (0, 1, 2, 3)  # create, view, update, delete
_VIEW = (1,)
_VIEW_UPDATE = (1, 2)
#: resource code → actions of the `admin` role in §4.2: all on 0,1,2,3,4,5,8,10,11,12,13,14,16;
#: view on 6 (roles) and 7 (audit); view+update on 9 (company) and 15 (vm_payment).
ADMIN_GRANTS: dict[int, tuple[int, ...]] = {
    **{r: _ALL for r in (0, 1, 2, 3, 4, 5, 8, 10, 11, 12, 13, 14, 16)},
    6: _VIEW,
    7: _VIEW,
    9: _VIEW_UPDATE,
    15: _VIEW_UPDATE,
}
#: what r1 seeded for `admin` (kept on downgrade).
R1_ADMIN_GRANTS: dict[int, tuple[int, ...]] = {
    1: _ALL,
    3: _ALL,
    12: _ALL,
    16: _ALL,
    15: _VIEW_UPDATE,
    9: _VIEW_UPDATE,
}

_roles = sa.table(
    "admin_roles",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("is_system_role", sa.Boolean),
)
_permissions = sa.table(
    "admin_role_permissions",
    sa.column("role_id", sa.Integer),
    sa.column("resource", sa.Integer),
    sa.column("action", sa.Integer),
)


def _added() -> set[tuple[int, int]]:
    new = {(r, a) for r, actions in ADMIN_GRANTS.items() for a in actions}
    old = {(r, a) for r, actions in R1_ADMIN_GRANTS.items() for a in actions}
    return new - old


def _admin_role_id() -> int | None:
    query = sa.select(_roles.c.id).where(
        _roles.c.name == "admin", _roles.c.is_system_role == sa.true()
    )
    return op.get_bind().execute(query).scalar()


def upgrade() -> None:
    op.create_table(
        "admin_audit",
        sa.Column("id", t.UBigInt, autoincrement=True, nullable=False),
        sa.Column("user_id", t.UInt, nullable=False),
        sa.Column("at", t.UtcDateTime(datetime_column=True), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("resource", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("summary", t.JsonText(), nullable=True),
        sa.Column("status", t.USmallInt, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_index("idx_admin_audit_at", "admin_audit", ["at"])
    op.create_index("idx_admin_audit_user", "admin_audit", ["user_id", "at"])
    role_id = _admin_role_id()
    if role_id is None:  # an operator removed the system role: nothing to grant to
        return
    bind = op.get_bind()
    have = {
        (int(r), int(a))
        for r, a in bind.execute(
            sa.select(_permissions.c.resource, _permissions.c.action).where(
                _permissions.c.role_id == role_id
            )
        )
    }
    missing = sorted(_added() - have)
    if missing:
        op.bulk_insert(
            _permissions,
            [{"role_id": role_id, "resource": r, "action": a} for r, a in missing],
        )


#: What `downgrade` drops; it refuses while any of it holds data (data_guard).
DROPS = Drops(tables=("admin_audit",))


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    role_id = _admin_role_id()
    if role_id is not None:
        for resource, action in sorted(_added()):
            op.execute(
                _permissions.delete().where(
                    _permissions.c.role_id == role_id,
                    _permissions.c.resource == resource,
                    _permissions.c.action == action,
                )
            )
    op.drop_index("idx_admin_audit_user", table_name="admin_audit")
    op.drop_index("idx_admin_audit_at", table_name="admin_audit")
    op.drop_table("admin_audit")
