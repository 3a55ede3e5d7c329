"""Backfill Phase 1: read unlinked VMs in keyset batches, write subscription + line item + link."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from sqlalchemy import (
    DateTime,
    Integer,
    func,
    insert,
    or_,
    select,
    text,
    true,
    type_coerce,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement, TextClause

from adapters.mysql import tables as t
from adapters.mysql.legacy_shape import BillingShape
from domain.legacy import LegacyDataError, LegacyVm, Problem, VmPlan, plan_vm


class AlreadyLinked(RuntimeError):
    """Another process linked the VM between our read and our guarded update (R2)."""


def unlinked_condition(shape: BillingShape) -> ColumnElement[bool]:
    """`subscription_line_item_id IS NULL OR = 0` (§4.1); every VM on the legacy shape."""
    if not shape.has_link:
        return true()
    link = t.vm.c.subscription_line_item_id
    return or_(link.is_(None), link == 0)


def _as_utc(value: Any) -> datetime | None:
    """A raw TIMESTAMP value as aware UTC; a zero date (returned as text or None) is None (R8)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None


async def count_linked(conn: AsyncConnection, shape: BillingShape) -> int:
    """VMs already linked: Phase 1 skips them (§6)."""
    if not shape.has_link:
        return 0
    stmt = select(func.count()).select_from(t.vm).where(~unlinked_condition(shape))
    return int((await conn.execute(stmt)).scalar_one())


async def read_vm_batch(
    conn: AsyncConnection, shape: BillingShape, after_id: int, limit: int
) -> list[LegacyVm]:
    """The next `limit` unlinked VMs (deleted too, B3) after `after_id`, as NULL-tolerant rows (B6).

    Reads raw columns only (never the full `Vm` model, which cannot hold a NULL link) and
    outer-joins host → region → company and template → cost plan so a broken reference shows up
    as a missing value that `plan_vm` reports (R8) instead of failing the whole batch.
    """
    vm, host, region, company = t.vm, t.vm_host, t.vm_host_region, t.company
    template, plan = t.vm_template, t.vm_cost_plan
    stmt = (
        select(
            vm.c.id,
            vm.c.user_id,
            type_coerce(vm.c.deleted, Integer).label("deleted"),
            type_coerce(vm.c.auto_renewal_enabled, Integer).label("auto_renewal_enabled"),
            type_coerce(vm.c.expires, DateTime()).label("expires"),
            type_coerce(vm.c.created, DateTime()).label("created"),
            vm.c.template_id,
            vm.c.custom_template_id,
            company.c.id.label("company_id"),
            company.c.base_currency,
            template.c.name.label("template_name"),
            plan.c.amount.label("plan_amount"),
            plan.c.currency.label("plan_currency"),
            plan.c.interval_amount.label("plan_interval_amount"),
            type_coerce(plan.c.interval_type, Integer).label("plan_interval_type"),
        )
        .select_from(
            vm.outerjoin(host, host.c.id == vm.c.host_id)
            .outerjoin(region, region.c.id == host.c.region_id)
            .outerjoin(company, company.c.id == region.c.company_id)
            .outerjoin(template, template.c.id == vm.c.template_id)
            .outerjoin(plan, plan.c.id == template.c.cost_plan_id)
        )
        .where(vm.c.id > after_id, unlinked_condition(shape))
        .order_by(vm.c.id)
        .limit(limit)
    )
    rows = (await conn.execute(stmt)).mappings().all()
    if not rows:
        return []
    vms = [
        LegacyVm(
            id=int(r["id"]),
            user_id=int(r["user_id"]),
            deleted=bool(_bit(r["deleted"])),
            auto_renewal_enabled=bool(_bit(r["auto_renewal_enabled"])),
            expires=_as_utc(r["expires"]),
            created=_as_utc(r["created"]),
            company_id=r["company_id"],
            company_base_currency=r["base_currency"],
            template_id=r["template_id"],
            custom_template_id=r["custom_template_id"],
            template_name=r["template_name"],
            plan_amount=r["plan_amount"],
            plan_currency=r["plan_currency"],
            plan_interval_amount=r["plan_interval_amount"],
            plan_interval_type=r["plan_interval_type"],
            # is_setup: written 0 here, set by Phase 2 in the transaction that copies a paid
            # payment (`legacy_payments.mark_setup`). A per-VM lookup here would read
            # vm_payment in random order (it is clustered by payment id), which made Phase 1
            # I/O-bound on large tables. Only never-paid candidates are looked up, below.
            has_paid_payment=False,
        )
        for r in rows
    ]
    return await _with_paid_orders(conn, vms)


async def _with_paid_orders(conn: AsyncConnection, vms: list[LegacyVm]) -> list[LegacyVm]:
    """Look up paid payments of the VMs marked as unpaid orders (`expires == created`).

    Their plan depends on it (`LegacyVm.never_paid_order`): one with a paid payment keeps its
    expiry. Few VMs carry the mark (LNVPS deleted them after a day), and `vm_payment.vm_id`
    is indexed (its foreign key), so this one statement per batch stays cheap.
    """
    marked = [vm.id for vm in vms if vm.expires is not None and vm.expires == vm.created]
    if not marked:
        return vms
    vp = t.vm_payment
    stmt = (
        select(vp.c.vm_id)
        .where(vp.c.vm_id.in_(marked), type_coerce(vp.c.is_paid, Integer) == 1)
        .distinct()
    )
    paid = {int(v) for v in (await conn.execute(stmt)).scalars()}
    return [attrs.evolve(vm, has_paid_payment=True) if vm.id in paid else vm for vm in vms]


def _bit(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big")
    return int(value or 0)


def plan_batch(vms: Sequence[LegacyVm], now: datetime) -> tuple[list[VmPlan], list[Problem]]:
    """Apply the pure rules to each VM; a bad VM becomes a Problem, the rest go on (§7)."""
    plans: list[VmPlan] = []
    problems: list[Problem] = []
    for legacy_vm in vms:
        try:
            plans.append(plan_vm(legacy_vm, now))
        except LegacyDataError as exc:
            problems.append(Problem("phase1", exc.message, vm_id=legacy_vm.id))
    return plans, problems


def _subscription_row(plan: VmPlan) -> dict[str, Any]:
    """The planned record's fields are the `subscription` columns it fills."""
    return attrs.asdict(plan.subscription, recurse=False)


def _line_item_row(plan: VmPlan, subscription_id: int) -> dict[str, Any]:
    """The planned record's fields, with its subscription and no configuration."""
    row = attrs.asdict(plan.line_item, recurse=False)
    return {"subscription_id": subscription_id, **row, "configuration": None}


def _guarded_link(vm_ids: Sequence[int], link: Any) -> Any:
    """`UPDATE vm SET link = … WHERE id IN … AND link IS NULL OR 0`: never relink (R2)."""
    column = t.vm.c.subscription_line_item_id
    return (
        update(t.vm)
        .where(t.vm.c.id.in_(vm_ids), or_(column.is_(None), column == 0))
        .values(subscription_line_item_id=link)
    )


def _link_many_sql(size: int) -> TextClause:
    """The guarded `UPDATE vm … CASE id WHEN …` for `size` VMs, as text with numbered binds.

    Text because compiling a 1 000-branch `case()` construct costs more than running it; the
    string depends only on `size` (the batch size), so the statement cache holds one or two.
    """
    whens = " ".join(f"WHEN :v{i} THEN :l{i}" for i in range(size))
    ids = ", ".join(f":v{i}" for i in range(size))
    return text(
        f"UPDATE vm SET subscription_line_item_id = CASE id {whens} END WHERE id IN ({ids}) "
        "AND (subscription_line_item_id IS NULL OR subscription_line_item_id = 0)"
    )


async def write_batch(conn: AsyncConnection, plans: Sequence[VmPlan]) -> None:
    """Write many VMs with three statements inside the caller's transaction.

    Batched `INSERT … RETURNING` (SQLAlchemy "insertmanyvalues": one compiled statement,
    multi-row pages) for subscriptions, mapped back by their unique-per-VM name, and line
    items, mapped by subscription id; then one guarded `UPDATE … CASE`. Raises if any row is
    missing, so the caller rolls the batch back and retries VM by VM.
    """
    sub, item = t.subscription, t.subscription_line_item
    by_name = {plan.subscription.name: plan for plan in plans}
    result = await conn.execute(
        insert(sub).returning(sub.c.id, sub.c.name), [_subscription_row(p) for p in plans]
    )
    sub_ids = {by_name[str(name)].vm_id: int(sid) for sid, name in result.all()}
    if len(sub_ids) != len(plans):
        raise RuntimeError("subscription RETURNING did not map every VM")
    vm_by_sub = {sid: vm_id for vm_id, sid in sub_ids.items()}
    rows = [_line_item_row(p, sub_ids[p.vm_id]) for p in plans]
    result = await conn.execute(insert(item).returning(item.c.id, item.c.subscription_id), rows)
    links = {vm_by_sub[int(sid)]: int(lid) for lid, sid in result.all()}
    if len(links) != len(plans):
        raise RuntimeError("line item RETURNING did not map every VM")
    params: dict[str, int] = {}
    for i, (vm_id, item_id) in enumerate(links.items()):
        params[f"v{i}"], params[f"l{i}"] = vm_id, item_id
    result = await conn.execute(_link_many_sql(len(links)), params)
    if result.rowcount != len(plans):
        raise AlreadyLinked("some VMs of the batch were linked concurrently")


async def write_one(conn: AsyncConnection, plan: VmPlan) -> None:
    """Write one VM's three rows in the caller's transaction; AlreadyLinked if raced (R1, R2)."""
    sub, item = t.subscription, t.subscription_line_item
    result = await conn.execute(insert(sub).values(_subscription_row(plan)))
    sub_id = int(_pk(result.inserted_primary_key))
    result = await conn.execute(insert(item).values(_line_item_row(plan, sub_id)))
    item_id = int(_pk(result.inserted_primary_key))
    result = await conn.execute(_guarded_link([plan.vm_id], item_id))
    if result.rowcount != 1:
        raise AlreadyLinked(f"VM {plan.vm_id} was linked by another process")


def _pk(key: Any) -> Any:
    if key is None or key[0] is None:
        raise RuntimeError("the database did not report the inserted id")
    return key[0]
