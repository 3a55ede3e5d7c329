"""Catalogue queries the billing use cases share: owned VMs, their price and how it is charged."""

from __future__ import annotations

import logging

import attrs

from app.billing.errors import (
    PricingNotFound,
    SubscriptionNotFound,
    TemplateNotFound,
    UnsupportedDisk,
    UserNotFound,
    VmNotFound,
)
from domain.enums import DiskInterface, DiskType, PaymentMethod
from domain.errors import NotACustomVm, found
from domain.exchange import RateTable
from domain.intervals import Interval
from domain.invoice_content import reverse_charge_for
from domain.model import (
    Company,
    CostPlan,
    CustomPricing,
    CustomPricingDisk,
    CustomTemplate,
    Subscription,
    User,
    Vm,
    VmTemplate,
)
from domain.money import Money
from domain.pricing import (
    CUSTOM_INTERVAL,
    Charging,
    check_custom_limits,
    custom_price,
    find_disk_row,
    plan_price,
    require_whole_gib,
)
from domain.tax import TaxRates
from ports.storage import UnitOfWork

log = logging.getLogger(__name__)


async def owned_vm(
    uow: UnitOfWork, vm_id: int, user_id: int | None, *, allow_deleted: bool = False
) -> Vm:
    """The VM if it exists and belongs to `user_id` (None: a system caller, no owner check).

    Another user's VM and a missing one give the same `VmNotFound` (D19: 404, never reveal).
    """
    vm = await uow.vms.get(vm_id)
    if vm is None or (user_id is not None and vm.user_id != user_id):
        raise VmNotFound("VM not found")
    if vm.deleted and not allow_deleted:
        raise VmNotFound("VM not found")
    return vm


async def subscription_of(uow: UnitOfWork, vm: Vm) -> Subscription:
    """The subscription that bills the VM (through its line item)."""
    sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
    return found(sub, SubscriptionNotFound("Subscription not found"))


async def user_of(uow: UnitOfWork, user_id: int) -> User:
    return found(await uow.users.get(user_id), UserNotFound("User not found"))


async def pricing_with_disks(
    uow: UnitOfWork, pricing_id: int
) -> tuple[CustomPricing, list[CustomPricingDisk]]:
    missing = PricingNotFound("Custom pricing not found")
    pricing = found(await uow.custom_pricing.get(pricing_id), missing)
    return pricing, await uow.custom_pricing.list_disks(pricing.id)


def orderable_spec(
    pricing: CustomPricing,
    disks: list[CustomPricingDisk],
    cpu: int,
    memory: int,
    disk: int,
    disk_type: DiskType,
    disk_interface: DiskInterface,
) -> CustomTemplate:
    """The custom spec `pricing` sells (not stored yet): a disk of that type and interface must
    be on offer, memory and disk whole GiB (what is billed is what the VM gets, `billed_gib`)
    and the spec within the pricing's limits (D21)."""
    if find_disk_row(disk_type, disk_interface, disks) is None:
        raise UnsupportedDisk(
            f"This pricing has no {disk_type.name} disk with interface "
            f"{disk_interface.display_name}"
        )
    spec = CustomTemplate(
        id=0,
        cpu=cpu,
        memory=memory,
        disk_size=disk,
        disk_type=disk_type,
        disk_interface=disk_interface,
        pricing_id=pricing.id,
        cpu_mfg=pricing.cpu_mfg,
        cpu_arch=pricing.cpu_arch,
        cpu_features=pricing.cpu_features,
        limits=pricing.limits,
    )
    check_custom_limits(spec, pricing, disks)
    require_whole_gib("memory", memory)
    require_whole_gib("disk", disk)
    return spec


async def template_with_plan(uow: UnitOfWork, template_id: int) -> tuple[VmTemplate, CostPlan]:
    template = found(
        await uow.templates.get(template_id), TemplateNotFound("VM template not found")
    )
    plan = await uow.cost_plans.get(template.cost_plan_id)
    return template, found(plan, TemplateNotFound("VM template has no cost plan"))


@attrs.frozen(kw_only=True)
class VmPrice:
    """What a VM costs per interval in its list currency, and the spec that price is for."""

    list_price: Money
    interval: Interval
    spec: VmTemplate | CustomTemplate
    template: VmTemplate | None = None
    pricing: CustomPricing | None = None
    disks: tuple[CustomPricingDisk, ...] = ()


def plan_vm_price(template: VmTemplate, plan: CostPlan) -> VmPrice:
    """The price of a VM on a standard template: its cost plan's."""
    return VmPrice(
        list_price=plan_price(plan), interval=plan.interval, spec=template, template=template
    )


async def vm_price(uow: UnitOfWork, vm: Vm) -> VmPrice:
    """The standard plan price and interval, or the monthly custom price with the VM's current
    IP assignments (R4, R5: a custom VM pays for at least one IPv4 and one IPv6).

    The template's or pricing's `enabled`/`expires` are not checked: renewing a VM on a
    retired offer is allowed (lifecycle.md §13.15).
    """
    if vm.template_id is not None:
        return plan_vm_price(*await template_with_plan(uow, vm.template_id))
    if vm.custom_template_id is None:
        raise NotACustomVm("Not a custom template vm")
    missing = TemplateNotFound("Custom template not found")
    spec = found(await uow.custom_templates.get(vm.custom_template_id), missing)
    pricing, disks = await pricing_with_disks(uow, spec.pricing_id)
    ips = await uow.ip_assignments.list_by_vm(vm.id)
    price = custom_price(spec, pricing, disks, ips)
    if price.disk_row_fallback:
        log.warning(
            "VM %s: custom pricing %s has no %s disk row with interface %s; its disk is "
            "billed at the first %s row",
            vm.id,
            pricing.id,
            spec.disk_type.name,
            spec.disk_interface.display_name,
            spec.disk_type.name,
        )
    return VmPrice(
        list_price=price.total,
        interval=CUSTOM_INTERVAL,
        spec=spec,
        pricing=pricing,
        disks=tuple(disks),
    )


async def charging_for(
    uow: UnitOfWork,
    *,
    method: PaymentMethod,
    rates: RateTable,
    tax_rates: TaxRates,
    user_id: int,
    company_id: int,
    user: User | None = None,
    seller: Company | None = None,
) -> Charging:
    """How to charge a user: tax by the user's country (D3), none under reverse charge (issue
    13), the company's fee config (D4). `user`, `seller`: the user with `user_id` and the
    company with `company_id`, when already read. A fiat method whose config an admin
    disabled is `withdrawn`: no rail is asked for it (`credit_quote.issue`, 422).
    Lightning is the server's own node; its config row only lists it."""
    if user is None or user.id != user_id:
        user = await user_of(uow, user_id)
    if seller is None or seller.id != company_id:
        seller = await uow.companies.get(company_id)
    reverse = seller is not None and reverse_charge_for(seller, user)
    fee_config = None
    if method is not PaymentMethod.LIGHTNING:
        fee_config = await uow.payment_methods.get_for_company(company_id, method)
    return Charging(
        method=method,
        rates=rates,
        tax_rates=tax_rates,
        country=None if reverse else user.country_code,
        fee_config=fee_config,
        reverse_charge=reverse,
    )
