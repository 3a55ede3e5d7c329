"""What can be ordered: listed templates and custom pricings, images, custom prices (api.md 6.3)."""

from __future__ import annotations

from datetime import datetime

import attrs

from app.billing.catalogue import pricing_with_disks
from app.billing.placement import Room, best_placement, region_rooms
from domain.enums import CpuArch, CpuMfg, DiskInterface, DiskType
from domain.model import (
    CostPlan,
    CustomPricing,
    CustomPricingDisk,
    CustomTemplate,
    Host,
    OsImage,
    Region,
    VmTemplate,
)
from domain.money import Money
from domain.pricing import custom_price
from ports.clock import Clock
from ports.storage import UnitOfWork, UnitOfWorkFactory


@attrs.frozen(kw_only=True)
class TemplateOffer:
    template: VmTemplate
    plan: CostPlan
    region: Region


@attrs.frozen(kw_only=True)
class DiskOffer:
    """A disk the pricing sells, its maximum capped by the free room on matching host disks."""

    row: CustomPricingDisk
    max_disk: int


@attrs.frozen(kw_only=True)
class CustomOffer:
    pricing: CustomPricing
    region: Region
    max_cpu: int
    max_memory: int
    disks: tuple[DiskOffer, ...]


@attrs.frozen(kw_only=True)
class Offers:
    """`custom` is None when no enabled custom pricing exists in an enabled region at all."""

    templates: list[TemplateOffer]
    custom: list[CustomOffer] | None


def _is_live(expires: datetime | None, now: datetime) -> bool:
    return expires is None or expires >= now


def _host_matches(host: Host, pricing: CustomPricing) -> bool:
    """Unknown CPU kinds match anything; listed features must all be on the host."""
    for want, have, unknown in (
        (pricing.cpu_mfg, host.cpu_mfg, CpuMfg.UNKNOWN),
        (pricing.cpu_arch, host.cpu_arch, CpuArch.UNKNOWN),
    ):
        if want is not unknown and have is not unknown and want != have:
            return False
    wanted, offered = pricing.cpu_features, host.cpu_features
    return not (wanted and offered and not set(wanted) <= set(offered))


def _custom_offer(
    pricing: CustomPricing, region: Region, disks: list[CustomPricingDisk], rooms: list[Room]
) -> CustomOffer | None:
    """Cap the pricing's maxima by the best free room of its matching hosts (api.md 8.7)."""
    matching = [room for room in rooms if _host_matches(room.host, pricing)]
    max_cpu = min(pricing.max_cpu, max((r.free_cpu for r in matching), default=0))
    max_memory = min(pricing.max_memory, max((r.free_memory for r in matching), default=0))
    offered = []
    for row in disks:
        room = max(
            (
                d.free
                for r in matching
                for d in r.disks
                if d.disk.kind is row.kind and d.disk.interface is row.interface
            ),
            default=0,
        )
        capped = min(row.max_disk_size, room)
        if capped > 0 and capped >= row.min_disk_size:
            offered.append(DiskOffer(row=row, max_disk=capped))
    if max_cpu < pricing.min_cpu or max_memory < pricing.min_memory or not offered:
        return None
    return CustomOffer(
        pricing=pricing,
        region=region,
        max_cpu=max_cpu,
        max_memory=max_memory,
        disks=tuple(offered),
    )


async def _rooms(uow: UnitOfWork, cache: dict[int, list[Room]], region_id: int) -> list[Room]:
    if region_id not in cache:
        cache[region_id] = await region_rooms(uow, region_id)
    return cache[region_id]


async def list_offers(uow_factory: UnitOfWorkFactory, clock: Clock) -> Offers:
    """The offers `GET /api/v1/vm/templates` lists (api.md 8.7).

    Templates: enabled, unexpired, in an enabled region, with a cost plan, and fitting on
    some host now. Custom pricings: enabled and unexpired in an enabled region, with CPU,
    memory and disk maxima capped by the free room of hosts with matching CPUs; a pricing
    left with nothing orderable is dropped. Unlike the reference, expired offers are not
    listed (they cannot be ordered), and free IPv4 addresses are not checked here.
    """
    now = clock.now()
    async with uow_factory() as uow:
        regions = {r.id: r for r in await uow.regions.list_all() if r.enabled}
        rooms: dict[int, list[Room]] = {}
        templates = []
        for template in await uow.templates.list_all():
            region = regions.get(template.region_id)
            if region is None or not template.enabled or not _is_live(template.expires, now):
                continue
            plan = await uow.cost_plans.get(template.cost_plan_id)
            room = await _rooms(uow, rooms, region.id)
            if plan is None or best_placement(room, template, template.disk_interface) is None:
                continue
            templates.append(TemplateOffer(template=template, plan=plan, region=region))
        pricings = [
            p
            for p in await uow.custom_pricing.list_all()
            if p.enabled and p.region_id in regions and _is_live(p.expires, now)
        ]
        custom = []
        for pricing in pricings:
            disks = await uow.custom_pricing.list_disks(pricing.id)
            room = await _rooms(uow, rooms, pricing.region_id)
            offer = _custom_offer(pricing, regions[pricing.region_id], disks, room)
            if offer is not None:
                custom.append(offer)
    return Offers(templates=templates, custom=custom if pricings else None)


async def list_images(uow_factory: UnitOfWorkFactory) -> list[OsImage]:
    """The enabled OS images, in storage order (`GET /api/v1/image`)."""
    async with uow_factory() as uow:
        return [image for image in await uow.images.list_all() if image.enabled]


async def price_custom_spec(
    uow_factory: UnitOfWorkFactory,
    *,
    pricing_id: int,
    cpu: int,
    memory: int,
    disk: int,
    disk_type: DiskType,
    disk_interface: DiskInterface,
) -> Money:
    """The monthly price of a custom spec in the pricing's currency, with one IPv4 and one
    IPv6 (api.md 8.3; no conversion, no tax). Limits are judged when ordering (D21).
    """
    async with uow_factory() as uow:
        pricing, disks = await pricing_with_disks(uow, pricing_id)
    spec = CustomTemplate(
        id=0,
        cpu=cpu,
        memory=memory,
        disk_size=disk,
        disk_type=disk_type,
        disk_interface=disk_interface,
        pricing_id=pricing.id,
    )
    return custom_price(spec, pricing, disks).total
