"""Admin VM templates (api.md §9.4): standard offers with their cost plan, made or edited
together."""

from __future__ import annotations

import attrs

from app.admin import catalogue_common as common
from app.admin.cost_plans import checked_plan, plan_changes, plan_repriced
from app.billing.price_in_force import cancel_quietly, expire_quotes_on, expire_upgrades_on
from app.billing.rails import PaymentRails
from domain.enums import IntervalType
from domain.errors import InvalidInput
from domain.model import CostPlan, SubscriptionPayment, VmTemplate
from ports.clock import Clock
from ports.storage import PricedBy, UnitOfWork, UnitOfWorkFactory

#: template fields a body may carry besides the `cost_plan_*` ones
TEMPLATE_FIELDS = (
    "name",
    "enabled",
    "expires",
    "cpu",
    "cpu_mfg",
    "cpu_arch",
    "cpu_features",
    "memory",
    "disk_size",
    "disk_type",
    "disk_interface",
    "cost_plan_id",
    "region_id",
    *common.LIMIT_FIELDS,
)

#: template fields an upgrade of its VMs is priced from besides the plan: the spec it grows
#: from and what picks the custom pricing it grows into (R11.1, R11.4)
UPGRADE_FIELDS = (
    "cpu",
    "memory",
    "disk_size",
    "disk_type",
    "disk_interface",
    "region_id",
    "cpu_mfg",
    "cpu_arch",
    "cpu_features",
)

#: template fields that say what its VMs were built with: a live VM keeps what it was built
#: with, so a template in use cannot change them (`_check_built_spec`)
BUILT_SPEC_FIELDS = ("cpu", "memory", "disk_size", "disk_type", "disk_interface", "region_id")


@attrs.frozen
class TemplateInfo:
    template: VmTemplate
    region_name: str | None
    cost_plan_name: str | None
    active_vm_count: int


async def _infos(uow: UnitOfWork, templates: list[VmTemplate]) -> list[TemplateInfo]:
    regions = {r.id: r.name for r in await uow.regions.list_all()}
    plans = {p.id: p.name for p in await uow.cost_plans.list_all()}
    vms = (await common.usage(uow)).vms_by_template
    return [
        TemplateInfo(t, regions.get(t.region_id), plans.get(t.cost_plan_id), vms.get(t.id, 0))
        for t in templates
    ]


async def list_templates(uow_factory: UnitOfWorkFactory) -> list[TemplateInfo]:
    async with uow_factory() as uow:
        return await _infos(uow, await uow.templates.list_all())


async def _template(uow: UnitOfWork, template_id: int) -> VmTemplate:
    return await common.existing(uow.templates, template_id, "VM template")


async def get_template(uow_factory: UnitOfWorkFactory, template_id: int) -> TemplateInfo:
    return await common.info_of(uow_factory, _template, template_id, _infos)


async def _check_refs(uow: UnitOfWork, fields: common.Fields) -> None:
    if "region_id" in fields:
        await common.check_reference(uow.regions, fields["region_id"], "Region")
    plan_id = fields.get("cost_plan_id")
    if plan_id is not None:
        await common.check_reference(uow.cost_plans, plan_id, "Cost plan")


def _template_changes(fields: common.Fields) -> dict[str, object]:
    changes = {k: v for k, v in fields.items() if k in TEMPLATE_FIELDS}
    if "name" in changes:
        changes["name"] = common.trimmed(changes["name"] or "", "Template name cannot be empty")
    if changes.get("cpu") == 0 or changes.get("memory") == 0 or changes.get("disk_size") == 0:
        raise InvalidInput("cpu, memory and disk_size must be greater than zero")
    return changes


async def _check_built_spec(uow: UnitOfWork, before: VmTemplate, after: VmTemplate) -> None:
    """A template's spec and region are what its live VMs were built with and are billed,
    shown and upgraded from: changing them under those VMs would make the record say what
    the host does not hold (an upgrade priced from the wrong size, or paid for a size the VM
    already has), so a template with live VMs keeps them (422); a new template is made for
    the new spec and this one disabled (review r7)."""
    changed = [f for f in BUILT_SPEC_FIELDS if getattr(before, f) != getattr(after, f)]
    if not changed:
        return
    live = (await common.usage(uow)).vms_by_template.get(before.id, 0)
    if live:
        raise common.InUse(
            f"Cannot change {', '.join(changed)} of a VM template {live} live VMs were built "
            "from: create a new template for the new spec and disable this one"
        )


async def create_template(
    uow_factory: UnitOfWorkFactory, clock: Clock, fields: common.Fields
) -> TemplateInfo:
    """Without `cost_plan_id` a plan is made from the `cost_plan_*` fields (amount needed)."""
    changes = _template_changes(fields)
    now = clock.now()
    async with uow_factory() as uow:
        await _check_refs(uow, fields)
        if fields.get("cost_plan_id") is None:
            if fields.get("cost_plan_amount") is None:
                raise InvalidInput("cost_plan_amount is required when cost_plan_id is not provided")
            plan_fields = {
                "cost_plan_name": f"{changes['name']} Cost Plan",
                "cost_plan_currency": "USD",
                "cost_plan_interval_amount": 1,
                "cost_plan_interval_type": IntervalType.MONTH,
                **{k: v for k, v in fields.items() if k.startswith("cost_plan_")},
            }
            plan = await uow.cost_plans.add(
                checked_plan(CostPlan(id=0, created=now, **plan_changes(plan_fields, "cost_plan_")))
            )
            changes["cost_plan_id"] = plan.id
        template = await uow.templates.add(
            common.evolve(
                VmTemplate(
                    id=0,
                    name="",
                    enabled=True,
                    created=now,
                    expires=None,
                    cpu=0,
                    memory=0,
                    disk_size=0,
                    disk_type=fields["disk_type"],
                    disk_interface=fields["disk_interface"],
                    cost_plan_id=0,
                    region_id=fields["region_id"],
                ),
                changes,
            )
        )
        return await common.committed(uow, template, _infos)


async def update_template(
    uow_factory: UnitOfWorkFactory,
    template_id: int,
    fields: common.Fields,
    *,
    clock: Clock,
    rails: PaymentRails | None = None,
) -> TemplateInfo:
    """`cost_plan_*` fields edit the template's plan in place (every template on it changes).

    A price change (another plan at another price, or edited plan price fields) expires the
    pending Purchase/Renewal/LNURL and upgrade payments of the subscriptions it re-prices
    (this template's VMs; every template's on the plan for an in-place plan edit) in the
    same transaction, cancelled at their provider after the commit (D23). A change to what
    an upgrade grows from or into (`UPGRADE_FIELDS`) expires this template's VMs' pending
    upgrades the same way; the spec its live VMs were built with does not change under them
    (`_check_built_spec`).
    """
    changes = _template_changes(fields)
    plan_edit = plan_changes(fields, "cost_plan_")
    now = clock.now()
    async with uow_factory() as uow:
        template = await _template(uow, template_id)
        await _check_refs(uow, fields)
        updated = common.evolve(template, changes)
        await _check_built_spec(uow, template, updated)
        expired: list[SubscriptionPayment] = []
        if updated.cost_plan_id != template.cost_plan_id:
            old_plan = await uow.cost_plans.get(template.cost_plan_id)
            new_plan = await uow.cost_plans.get(updated.cost_plan_id)
            if old_plan is None or new_plan is None or plan_repriced(old_plan, new_plan):
                expired += await expire_quotes_on(uow, now, template_id=template_id)
        if any(getattr(template, f) != getattr(updated, f) for f in UPGRADE_FIELDS):
            on = PricedBy(template_id=template_id)
            expired += await expire_upgrades_on(uow, now, on)
        if plan_edit:
            plan = await uow.cost_plans.get(updated.cost_plan_id)
            if plan is None:
                raise common.UnknownReference(f"Cost plan {updated.cost_plan_id} not found")
            edited = checked_plan(common.evolve(plan, plan_edit))
            await uow.cost_plans.update(edited)
            if plan_repriced(plan, edited):
                expired += await expire_quotes_on(uow, now, cost_plan_id=plan.id)
        await uow.templates.update(updated)
        info = await common.committed(uow, updated, _infos)
    await cancel_quietly(rails, expired)
    return info


async def delete_template(uow_factory: UnitOfWorkFactory, template_id: int) -> str:
    """Refused while VMs (deleted ones too: their rows point at it) use the template; its plan
    goes too when no other template uses it."""
    async with uow_factory() as uow:
        template = await _template(uow, template_id)
        vms = await uow.vms.count_using(template_id=template_id)
        if vms:
            raise common.InUse(f"Cannot delete VM template: {vms} VMs are using this template")
        await uow.templates.remove(template_id)
        others = (await common.usage(uow)).templates_by_plan.get(template.cost_plan_id, 0)
        message = "VM template deleted successfully"
        if not others:
            await uow.cost_plans.remove(template.cost_plan_id)
            message = "VM template and associated cost plan deleted successfully"
        await uow.commit()
    return message
