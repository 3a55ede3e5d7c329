"""Finalization (§9): drop legacy billing only once every VM is linked and every payment copied."""

from __future__ import annotations

import attrs
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Integer, func, inspect, select, text, type_coerce
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.mysql import tables as t
from adapters.mysql.engine import create_engine, dialect_is_mysql, url_is_mysql
from adapters.mysql.legacy_backfill import LOCK_NAME, BackfillLockTimeout
from adapters.mysql.legacy_shape import read_shape
from adapters.mysql.legacy_vms import unlinked_condition
from adapters.mysql.named_locks import of_this_database
from adapters.mysql.types import UInt


class FinalizationRefused(RuntimeError):
    """Dropping legacy billing now would lose data (B1): something is not migrated yet."""


@attrs.frozen
class FinalizationBlockers:
    """What still needs the legacy columns and table."""

    unlinked_vms: int
    #: `vm_payment` rows without a copy; the backfill also withholds (and reports) a paid row
    #: whose VM's time the old LNVPS moved after adoption, so those count here too
    uncopied_payments: int
    #: copies still unpaid whose legacy row the old LNVPS marked paid afterwards (drift)
    paid_only_in_legacy: int = 0

    @property
    def ready(self) -> bool:
        return self.unlinked_vms == 0 and self.uncopied_payments == 0 == self.paid_only_in_legacy


async def _blockers(conn: AsyncConnection) -> FinalizationBlockers:
    shape = await read_shape(conn)
    unlinked = await conn.execute(
        select(func.count()).select_from(t.vm).where(unlinked_condition(shape))
    )
    uncopied = drifted = 0
    if shape.has_vm_payment:
        vp, sp = t.vm_payment, t.subscription_payment
        missing = ~select(sp.c.id).where(sp.c.id == vp.c.id).exists()
        result = await conn.execute(select(func.count()).select_from(vp).where(missing))
        uncopied = int(result.scalar_one())
        paid_only_in_legacy = (
            select(func.count())
            .select_from(vp.join(sp, sp.c.id == vp.c.id))
            .where(type_coerce(vp.c.is_paid, Integer) == 1, type_coerce(sp.c.is_paid, Integer) == 0)
        )
        drifted = int((await conn.execute(paid_only_in_legacy)).scalar_one())
    return FinalizationBlockers(int(unlinked.scalar_one()), uncopied, drifted)


async def finalization_blockers(url: str | URL) -> FinalizationBlockers:
    """Count unlinked VMs, vm_payment rows without a copy and drifted copies."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await _blockers(conn)
    finally:
        await engine.dispose()


#: The legacy `vm` columns §9 drops, in the order they are dropped.
LEGACY_VM_COLUMNS = ("expires", "auto_renewal_enabled", "created")


def _drop_legacy(sync_conn: Connection) -> None:
    """Each step only if it is still to do: MariaDB DDL is not transactional, so a crash can
    leave any prefix of these steps done, and a second run must finish the rest."""
    inspector = inspect(sync_conn)
    ops = Operations(MigrationContext.configure(sync_conn))
    if "vm_payment" in inspector.get_table_names():
        ops.drop_table("vm_payment")
    columns = {str(c["name"]): c for c in inspector.get_columns("vm")}
    link_nullable = bool(columns["subscription_line_item_id"]["nullable"])
    drop = [name for name in LEGACY_VM_COLUMNS if name in columns]
    if not link_nullable and not drop:
        return
    with ops.batch_alter_table("vm") as batch:
        if link_nullable:
            batch.alter_column("subscription_line_item_id", existing_type=UInt, nullable=False)
        for name in drop:
            batch.drop_column(name)


async def finalize_legacy_billing(url: str | URL, *, lock_timeout: int = 60) -> None:
    """The manual §9 step, refused with `FinalizationRefused` while anything is unmigrated
    or drifted (a payment the old LNVPS settled after adoption, see the backfill's errors).

    Makes `vm.subscription_line_item_id` NOT NULL, drops `vm.expires`,
    `vm.auto_renewal_enabled`, `vm.created` and `vm_payment`. The backfill then sees the
    finalized shape and skips itself. Safe to run again after a crash half-way: it does
    only the steps still to do.
    """
    engine = create_engine(url, foreign_keys=url_is_mysql(url))
    try:
        async with engine.connect() as conn:
            if dialect_is_mysql(conn):
                got = await conn.execute(
                    text(f"SELECT GET_LOCK({of_this_database('n')}, :t)"),
                    {"n": LOCK_NAME, "t": lock_timeout},
                )
                if got.scalar() != 1:
                    raise BackfillLockTimeout(f"{LOCK_NAME!r} is held by another process")
            blockers = await _blockers(conn)
            if not blockers.ready:
                raise FinalizationRefused(
                    f"{blockers.unlinked_vms} VMs unlinked, {blockers.uncopied_payments} "
                    f"vm_payment rows not copied, {blockers.paid_only_in_legacy} paid by the "
                    "old LNVPS after they were copied unpaid (drift): run the backfill and fix "
                    "its errors first"
                )
            await conn.run_sync(_drop_legacy)
            await conn.commit()
    finally:
        await engine.dispose()
