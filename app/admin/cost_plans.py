"""Admin cost plans (api.md §9.5): the prices of standard templates, shared between them."""

from __future__ import annotations

from typing import Any

import attrs

from app.admin import catalogue_common as common
from app.billing.price_in_force import cancel_quietly, expire_quotes_on
from app.billing.rails import PaymentRails
from domain.errors import InvalidInput
from domain.intervals import checked_interval
from domain.limits import check_price
from domain.model import CostPlan, SubscriptionPayment
from ports.clock import Clock
from ports.storage import UnitOfWork, UnitOfWorkFactory


@attrs.frozen
class CostPlanInfo:
    plan: CostPlan
    template_count: int


def plan_changes(fields: common.Fields, prefix: str = "") -> dict[str, Any]:
    """Checked cost-plan fields (`prefix` = `cost_plan_` when they come with a template)."""
    label = "Cost plan " if prefix else ""
    out: dict[str, Any] = {}
    if f"{prefix}name" in fields:
        out["name"] = common.trimmed(
            fields[f"{prefix}name"] or "", "Cost plan name cannot be empty"
        )
    if f"{prefix}currency" in fields:
        message = f"{label or ''}{'currency' if prefix else 'Currency'} cannot be empty"
        out["currency"] = common.price_currency(fields[f"{prefix}currency"] or "", message)
    if f"{prefix}interval_amount" in fields:
        if not fields[f"{prefix}interval_amount"]:
            raise InvalidInput(
                f"{label}{'interval' if prefix else 'Interval'} amount cannot be zero"
            )
        out["interval_amount"] = fields[f"{prefix}interval_amount"]
    for name in ("amount", "interval_type"):
        if f"{prefix}{name}" in fields:
            out[name] = fields[f"{prefix}{name}"]
    return out


def checked_plan(plan: CostPlan) -> CostPlan:
    """A plan as it may be stored: its interval within its unit's maximum and its amount a
    bounded price (checked on the whole plan, so a PATCH of the unit alone is checked too)."""
    checked_interval(plan.interval_type, plan.interval_amount)
    check_price(plan.amount, "amount")
    return plan


async def _info(uow: UnitOfWork, plan: CostPlan) -> CostPlanInfo:
    return CostPlanInfo(plan, (await common.usage(uow)).enabled_templates_by_plan.get(plan.id, 0))


async def list_cost_plans(uow_factory: UnitOfWorkFactory) -> list[CostPlanInfo]:
    """Newest first (created desc, then id desc)."""
    async with uow_factory() as uow:
        counts = (await common.usage(uow)).enabled_templates_by_plan
        plans = await uow.cost_plans.list_all()
    plans.sort(key=lambda p: (p.created, p.id), reverse=True)
    return [CostPlanInfo(p, counts.get(p.id, 0)) for p in plans]


async def _plan(uow: UnitOfWork, plan_id: int) -> CostPlan:
    return await common.existing(uow.cost_plans, plan_id, "Cost plan")


async def get_cost_plan(uow_factory: UnitOfWorkFactory, plan_id: int) -> CostPlanInfo:
    async with uow_factory() as uow:
        return await _info(uow, await _plan(uow, plan_id))


async def create_cost_plan(
    uow_factory: UnitOfWorkFactory, clock: Clock, fields: common.Fields
) -> CostPlanInfo:
    changes = plan_changes(fields)
    async with uow_factory() as uow:
        plan = await uow.cost_plans.add(
            checked_plan(CostPlan(id=0, created=clock.now(), **changes))
        )
        await uow.commit()
    return CostPlanInfo(plan, 0)


#: the fields of a cost plan that make its price
PRICE_FIELDS = ("amount", "currency", "interval_amount", "interval_type")


def plan_repriced(old: CostPlan, new: CostPlan) -> bool:
    """Whether an edit changes what the plan's VMs cost (a rename does not)."""
    return any(getattr(old, name) != getattr(new, name) for name in PRICE_FIELDS)


async def update_cost_plan(
    uow_factory: UnitOfWorkFactory,
    plan_id: int,
    fields: common.Fields,
    *,
    clock: Clock,
    rails: PaymentRails | None = None,
) -> CostPlanInfo:
    """A changed amount, currency or interval makes the pending Purchase/Renewal/LNURL and
    upgrade payments of every subscription on a template of this plan stale: they are
    expired in the same transaction and cancelled at their provider after the commit (D23)."""
    changes = plan_changes(fields)
    async with uow_factory() as uow:
        old = await _plan(uow, plan_id)
        updated = checked_plan(common.evolve(old, changes))
        await uow.cost_plans.update(updated)
        expired: list[SubscriptionPayment] = []
        if plan_repriced(old, updated):
            expired = await expire_quotes_on(uow, clock.now(), cost_plan_id=plan_id)
        info = await _info(uow, updated)
        await uow.commit()
    await cancel_quietly(rails, expired)
    return info


async def delete_cost_plan(uow_factory: UnitOfWorkFactory, plan_id: int) -> None:
    async with uow_factory() as uow:
        await _plan(uow, plan_id)
        users = (await common.usage(uow)).templates_by_plan.get(plan_id, 0)
        if users:
            raise common.InUse(
                f"Cannot delete cost plan: {users} VM templates are using this cost plan"
            )
        await uow.cost_plans.remove(plan_id)
        await uow.commit()
