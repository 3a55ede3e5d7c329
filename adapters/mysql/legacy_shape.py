"""Detect the billing shape of a database (legacy, head, finalized) for the backfill."""

from __future__ import annotations

import attrs
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection


class LegacyShapeError(RuntimeError):
    """The database cannot be backfilled in its current shape (wrong order, B1, or not migrated)."""


@attrs.frozen(kw_only=True)
class BillingShape:
    """Which of the columns and tables the backfill reads or writes exist right now."""

    has_vm_payment: bool
    vm_columns: frozenset[str]
    subscription_columns: frozenset[str]
    payment_columns: frozenset[str]

    @property
    def has_link(self) -> bool:
        """`vm.subscription_line_item_id` exists (20260302151134 / r2 applied)."""
        return "subscription_line_item_id" in self.vm_columns

    @property
    def has_legacy_vm_columns(self) -> bool:
        """`vm.expires` and `vm.auto_renewal_enabled` still exist (not finalized, B1)."""
        return {"expires", "auto_renewal_enabled"} <= self.vm_columns

    @property
    def is_head(self) -> bool:
        """Every column the backfill writes exists (r2 or later applied)."""
        return (
            self.has_link
            and {"interval_amount", "interval_type", "is_setup"} <= self.subscription_columns
            and {"time_value", "metadata"} <= self.payment_columns
        )

    @property
    def is_finalized(self) -> bool:
        """§9 finalization done: legacy table and columns gone; nothing left to backfill."""
        return not self.has_vm_payment and not self.has_legacy_vm_columns


def _read_shape(sync_conn: Connection) -> BillingShape:
    inspector = inspect(sync_conn)
    tables = set(inspector.get_table_names())
    for needed in ("vm", "subscription", "subscription_line_item", "subscription_payment"):
        if needed not in tables:
            raise LegacyShapeError(f"table {needed!r} is missing: this is not an LNVPS database")

    def columns(table: str) -> frozenset[str]:
        return frozenset(str(col["name"]) for col in inspector.get_columns(table))

    return BillingShape(
        has_vm_payment="vm_payment" in tables,
        vm_columns=columns("vm"),
        subscription_columns=columns("subscription"),
        payment_columns=columns("subscription_payment"),
    )


async def read_shape(conn: AsyncConnection) -> BillingShape:
    """Inspect the live schema (reads `information_schema` / `sqlite_master` only)."""
    return await conn.run_sync(_read_shape)
