"""r6 on SQLite and MariaDB: the seeded `admin` role gets exactly the §4.2 grants on an existing
database (rows it already had are kept, not duplicated), loses only those on downgrade, and the
audit table comes and goes with it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import inspect

from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.migrations import R5_WORKER_LEASES_CURSORS, R6_ADMIN_AUDIT_GRANTS
from adapters.mysql.schema_upgrade import downgrade_database, upgrade_database
from domain.enums import AdminAction, AdminResource

R, A = AdminResource, AdminAction
ALL = set(AdminAction)
#: api.md §4.2, written out from its table
SPEC_ADMIN = {
    *(
        (r, a)
        for r in (
            R.USERS,
            R.VIRTUAL_MACHINES,
            R.HOSTS,
            R.PAYMENTS,
            R.ANALYTICS,
            R.SYSTEM,
            R.ACCESS_POLICY,
            R.IP_RANGE,
            R.ROUTER,
            R.VM_CUSTOM_PRICING,
            R.HOST_REGION,
            R.VM_OS_IMAGE,
            R.VM_TEMPLATE,
        )
        for a in ALL
    ),
    (R.ROLES, A.VIEW),
    (R.AUDIT, A.VIEW),
    (R.COMPANY, A.VIEW),
    (R.COMPANY, A.UPDATE),
    (R.VM_PAYMENT, A.VIEW),
    (R.VM_PAYMENT, A.UPDATE),
}


async def _admin_grants(url: str) -> list[tuple[AdminResource, AdminAction]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            r, p = tables.admin_roles.c, tables.admin_role_permissions.c
            rows = await conn.execute(
                sa.select(p.resource, p.action)
                .select_from(
                    tables.admin_role_permissions.join(tables.admin_roles, r.id == p.role_id)
                )
                .where(r.name == "admin")
                .order_by(p.resource, p.action)
            )
            return [(row.resource, row.action) for row in rows]
    finally:
        await engine.dispose()


async def _has_audit_table(url: str) -> bool:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
            return "admin_audit" in names
    finally:
        await engine.dispose()


async def test_admin_role_gets_the_spec_grants_up_down_up(db_url: str) -> None:
    await upgrade_database(db_url, R5_WORKER_LEASES_CURSORS)
    before = await _admin_grants(db_url)
    assert (R.USERS, A.VIEW) not in before and (R.VM_TEMPLATE, A.DELETE) in before
    engine = create_engine(db_url)
    try:  # an operator had already granted one of them by hand: kept once, not duplicated
        async with engine.begin() as conn:
            admin_id = await conn.scalar(
                sa.select(tables.admin_roles.c.id).where(tables.admin_roles.c.name == "admin")
            )
            await conn.execute(
                sa.insert(tables.admin_role_permissions).values(
                    role_id=admin_id, resource=R.HOSTS, action=A.VIEW
                )
            )
    finally:
        await engine.dispose()
    await upgrade_database(db_url, R6_ADMIN_AUDIT_GRANTS)
    after = await _admin_grants(db_url)
    assert len(after) == len(set(after)) and set(after) == SPEC_ADMIN
    assert await _has_audit_table(db_url)
    await downgrade_database(db_url, R5_WORKER_LEASES_CURSORS)
    assert set(await _admin_grants(db_url)) == set(before) - {(R.HOSTS, A.VIEW)}
    assert not await _has_audit_table(db_url)
    await upgrade_database(db_url)
    assert set(await _admin_grants(db_url)) == SPEC_ADMIN
