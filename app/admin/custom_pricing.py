"""Admin custom pricing (api.md §9.6): per-resource prices of custom VMs, with disk rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from app.admin import catalogue_common as common
from app.billing.price_in_force import cancel_quietly, expire_quotes_on, expire_upgrades_on
from app.billing.rails import PaymentRails
from domain.enums import DiskInterface, DiskType
from domain.errors import InvalidInput
from domain.model import CustomPricing, CustomPricingDisk, SubscriptionPayment
from domain.pricing import unpriced_disks
from ports.clock import Clock
from ports.storage import PricedBy, UnitOfWork, UnitOfWorkFactory

#: the per-unit costs and the spec bounds, in the order the admin JSON lists them
COST_FIELDS = (
    "cpu_cost",
    "memory_cost",
    "ip4_cost",
    "ip6_cost",
    "min_cpu",
    "max_cpu",
    "min_memory",
    "max_memory",
)
PRICING_FIELDS = (
    "name",
    "enabled",
    "expires",
    "region_id",
    "currency",
    *COST_FIELDS,
    "cpu_mfg",
    "cpu_arch",
    "cpu_features",
    *common.LIMIT_FIELDS,
)


@attrs.frozen
class PricingInfo:
    pricing: CustomPricing
    region_name: str | None
    disks: tuple[CustomPricingDisk, ...]
    template_count: int


async def _infos(uow: UnitOfWork, pricings: list[CustomPricing]) -> list[PricingInfo]:
    regions = {r.id: r.name for r in await uow.regions.list_all()}
    counts = await uow.custom_templates.count_by_pricing()
    return [
        PricingInfo(
            p,
            regions.get(p.region_id),
            tuple(await uow.custom_pricing.list_disks(p.id)),
            counts.get(p.id, 0),
        )
        for p in pricings
    ]


async def list_pricings(
    uow_factory: UnitOfWorkFactory, region_id: int | None = None, enabled: bool | None = None
) -> list[PricingInfo]:
    async with uow_factory() as uow:
        rows = await uow.custom_pricing.list_all()
        return await _infos(uow, common.matching(rows, region_id=region_id, enabled=enabled))


async def _pricing(uow: UnitOfWork, pricing_id: int) -> CustomPricing:
    return await common.existing(uow.custom_pricing, pricing_id, "Custom pricing")


async def get_pricing(uow_factory: UnitOfWorkFactory, pricing_id: int) -> PricingInfo:
    return await common.info_of(uow_factory, _pricing, pricing_id, _infos)


def _changes(fields: common.Fields) -> dict[str, Any]:
    changes = {k: v for k, v in fields.items() if k in PRICING_FIELDS}
    if "name" in changes:
        changes["name"] = common.trimmed(
            changes["name"] or "", "Custom pricing name cannot be empty"
        )
    if "currency" in changes:
        changes["currency"] = common.price_currency(changes["currency"] or "")
    return changes


def _check(pricing: CustomPricing) -> None:
    """Limits that no order could satisfy are refused (an empty offer is a mistake)."""
    if not 1 <= pricing.min_cpu <= pricing.max_cpu:
        raise InvalidInput("min_cpu must be at least 1 and at most max_cpu")
    if not 1 <= pricing.min_memory <= pricing.max_memory:
        raise InvalidInput("min_memory must be at least 1 and at most max_memory")


def _disks(pricing_id: int, rows: Sequence[common.Fields]) -> list[CustomPricingDisk]:
    out = []
    seen = set()
    for row in rows:
        if not 1 <= row["min_disk_size"] <= row["max_disk_size"]:
            raise InvalidInput("min_disk_size must be at least 1 and at most max_disk_size")
        key = (row["kind"], row["interface"])
        if key in seen:
            raise InvalidInput("disk_pricing lists the same kind and interface twice")
        seen.add(key)
        out.append(CustomPricingDisk(id=0, pricing_id=pricing_id, **row))
    return out


async def _check_region(uow: UnitOfWork, region_id: int) -> None:
    await common.check_reference(uow.regions, region_id, "Region")


async def create_pricing(
    uow_factory: UnitOfWorkFactory, clock: Clock, fields: common.Fields
) -> PricingInfo:
    draft = common.evolve(
        CustomPricing(
            id=0,
            name="",
            enabled=True,
            created=clock.now(),
            expires=None,
            region_id=0,
            currency="",
            cpu_cost=0,
            memory_cost=0,
            ip4_cost=0,
            ip6_cost=0,
        ),
        _changes(fields),
    )
    _check(draft)
    _disks(0, fields["disk_pricing"])
    async with uow_factory() as uow:
        await _check_region(uow, draft.region_id)
        pricing = await uow.custom_pricing.add(draft)
        for disk in _disks(pricing.id, fields["disk_pricing"]):
            await uow.custom_pricing.add_disk(disk)
        return await common.committed(uow, pricing, _infos)


#: the fields of a custom pricing that make the price of its VMs
PRICE_FIELDS = ("currency", "cpu_cost", "memory_cost", "ip4_cost", "ip6_cost")
#: the fields that decide which standard VMs grow into the pricing (R11.1; disk rows too)
CHOICE_FIELDS = ("enabled", "region_id", "cpu_mfg", "cpu_arch", "cpu_features")
#: the bounds an upgrade's new values are judged by (D21; the disk rows' sizes too)
SIZE_FIELDS = ("min_cpu", "max_cpu", "min_memory", "max_memory")
#: whether the pricing is on sale: a custom VM on it grows only while it is (enabled, not
#: past its `expires`); a standard VM grows into it while it is enabled (R11.1, as the
#: reference, does not read `expires`)
SALE_FIELDS = ("enabled", "expires")


def _disk_prices(disks: Sequence[CustomPricingDisk]) -> set[tuple[Any, Any, int]]:
    return {(d.kind, d.interface, d.cost) for d in disks}


def _disk_rows(disks: Sequence[CustomPricingDisk]) -> set[tuple[Any, Any, int, int, int]]:
    return {(d.kind, d.interface, d.cost, d.min_disk_size, d.max_disk_size) for d in disks}


class DisksInUse(common.InUse):
    """A `disk_pricing` that leaves no row for a disk live custom VMs of the pricing have (422)."""


def _disk_name(disk: tuple[DiskType, DiskInterface]) -> str:
    return f"{disk[0].name.lower()} ({disk[1].name.lower()})"


async def _keep_disks_in_use(
    uow: UnitOfWork, pricing: CustomPricing, old_region: int, disks: Sequence[CustomPricingDisk]
) -> None:
    """`DisksInUse` when `disks` leave a disk of a live custom template of `pricing` with no
    row of its type (`unpriced_disks`): its VM could never be renewed again (its renewal is
    "No disk price found"), so its paid time would run out and the VM be deleted. A disk
    whose own interface loses its row while its type keeps one is billed at that row
    (`domain.pricing.billed_disk_row`, logged) and stays renewable: allowed.

    Judged under the locks of the pricing's regions (before and after the edit; an order
    takes its pricing's region's before it reads the pricing), on the templates as last
    committed (`disks_in_use`): an order that read the old rows is committed before this
    judges, and one after waits for this commit and reads the new rows (refused "No disk
    price found"). The region locks are taken after the subscriptions' (whose quotes the
    edit expires) and before the pricing's rows are written, in the one lock order
    (subscription, user, region; then the pricing's row, which an order's new custom
    template and an upgrade's conversion lock through their foreign key), so none of
    them waits on this edit in a cycle."""
    for region_id in sorted({old_region, pricing.region_id}):
        await uow.regions.lock(region_id)
    in_use = await uow.custom_templates.disks_in_use(pricing.id)
    stranded = unpriced_disks(in_use, disks)
    if stranded:
        named = ", ".join(f"{_disk_name(d)} ×{in_use[d]}" for d in stranded)
        raise DisksInUse(
            "disk_pricing leaves no row for a disk type that live custom VMs of this pricing "
            f"have: {named}; they could not be renewed. Keep a row of each type in use "
            "(any interface)"
        )


def _changed(old: CustomPricing, new: CustomPricing, fields: Sequence[str]) -> bool:
    return any(getattr(old, f) != getattr(new, f) for f in fields)


async def _end_upgrades(
    uow: UnitOfWork, pricing: CustomPricing, now: datetime, *, own: bool, regions: set[int]
) -> list[SubscriptionPayment]:
    """Expire the pending upgrade quotes a change of `pricing` made wrong: with `own`, those
    of the custom VMs on it; those of the standard VMs of `regions`, which grow into their
    region's pricing. Each subscription under its lock (`expire_upgrades_on`)."""
    expired: list[SubscriptionPayment] = []
    if own:
        expired += await expire_upgrades_on(uow, now, PricedBy(custom_pricing_id=pricing.id))
    for region_id in sorted(regions):
        expired += await expire_upgrades_on(uow, now, PricedBy(template_region_id=region_id))
    return expired


async def update_pricing(
    uow_factory: UnitOfWorkFactory,
    pricing_id: int,
    fields: common.Fields,
    *,
    clock: Clock,
    rails: PaymentRails | None = None,
) -> PricingInfo:
    """`disk_pricing`, when sent, replaces every disk row; one that leaves no row of a disk
    type a live custom VM of the pricing has is refused (422, nothing changed): that VM
    could not be renewed (`_keep_disks_in_use`). Nothing else of the pricing is read when
    its VMs renew (the bounds, `enabled`, `expires` and the region are not: a VM on a
    retired offer renews), so no other field can strand one.

    Changed prices (a resource cost, the currency, a disk row's cost) make the pending
    Purchase/Renewal/LNURL and upgrade payments of the custom VMs on this pricing stale:
    they are expired in the same transaction and cancelled at their provider after the
    commit (D23). A change that leaves the prices but moves what an upgrade of those VMs is
    judged by — whether the pricing is on sale (`SALE_FIELDS`: disabled, or an `expires`
    set or moved), the bounds of the new values (`SIZE_FIELDS`, a disk row's sizes) —
    expires their pending upgrade quotes alone the same way: a quote made under terms that
    no longer hold is ended, not left to be paid and then credited instead of applied (the
    completion still credits one paid before the cancel, `upgrades._cannot_be_made`). Their
    renewals keep their price. The pending upgrades of the standard VMs of its region
    (before and after the edit), which may grow into it, go too: on changed prices, disk
    rows, bounds, or a change to which VMs it is chosen for (`CHOICE_FIELDS`).
    """
    changes = _changes(fields)
    async with uow_factory() as uow:
        old = await _pricing(uow, pricing_id)
        updated = common.evolve(old, changes)
        _check(updated)
        if "region_id" in changes:
            await _check_region(uow, updated.region_id)
        repriced = _changed(old, updated, PRICE_FIELDS)
        disks_changed = False
        disks: list[CustomPricingDisk] | None = None
        if fields.get("disk_pricing") is not None:
            disks = _disks(pricing_id, fields["disk_pricing"])
            before = await uow.custom_pricing.list_disks(pricing_id)
            repriced = repriced or _disk_prices(before) != _disk_prices(disks)
            disks_changed = _disk_rows(before) != _disk_rows(disks)
        # the locks in their one order (subscriptions, then regions), then the pricing's
        # rows written: see `_keep_disks_in_use`
        expired: list[SubscriptionPayment] = []
        now = clock.now()
        if repriced:  # the custom VMs' every quote, their upgrades among them
            expired = await expire_quotes_on(uow, now, custom_pricing_id=pricing_id)
        bounds = disks_changed or _changed(old, updated, SIZE_FIELDS)
        own = not repriced and (bounds or _changed(old, updated, SALE_FIELDS))
        regional = repriced or bounds or _changed(old, updated, CHOICE_FIELDS)
        regions = {old.region_id, updated.region_id} if regional else set()
        expired += await _end_upgrades(uow, updated, now, own=own, regions=regions)
        if disks is not None:
            await _keep_disks_in_use(uow, updated, old.region_id, disks)
        await uow.custom_pricing.update(updated)
        if disks is not None:
            await uow.custom_pricing.remove_disks(pricing_id)
            for disk in disks:
                await uow.custom_pricing.add_disk(disk)
        info = await common.committed(uow, updated, _infos)
    await cancel_quietly(rails, expired)
    return info


async def delete_pricing(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    pricing_id: int,
    *,
    rails: PaymentRails | None = None,
) -> str:
    """Disabled instead while custom templates (and so VMs) use the pricing.

    Either way it sells no more upgrades: the pending upgrade quotes of the custom VMs on it
    and of the standard VMs of its region (which grew into it) are expired in the same
    transaction and cancelled at `rails` after the commit, as a PATCH disabling it does."""
    async with uow_factory() as uow:
        pricing = await _pricing(uow, pricing_id)
        used = (await uow.custom_templates.count_by_pricing()).get(pricing_id, 0)
        if used:
            await uow.custom_pricing.update(attrs.evolve(pricing, enabled=False))
            message = (
                "Custom pricing model disabled instead of deleted: "
                f"{used} templates are using this pricing model"
            )
        else:
            await uow.custom_pricing.remove_disks(pricing_id)
            await uow.custom_pricing.remove(pricing_id)
            message = "Custom pricing model deleted successfully"
        expired = await _end_upgrades(
            uow, pricing, clock.now(), own=bool(used), regions={pricing.region_id}
        )
        await uow.commit()
    await cancel_quietly(rails, expired)
    return message


async def copy_pricing(
    uow_factory: UnitOfWorkFactory, clock: Clock, pricing_id: int, fields: common.Fields
) -> PricingInfo:
    """A new pricing with every setting and disk row of the source, under a new name."""
    name = common.trimmed(fields.get("name") or "", "Custom pricing name cannot be empty")
    async with uow_factory() as uow:
        source = await _pricing(uow, pricing_id)
        region_id = fields.get("region_id") or source.region_id
        await _check_region(uow, region_id)
        copy = await uow.custom_pricing.add(
            attrs.evolve(
                source,
                id=0,
                name=name,
                created=clock.now(),
                region_id=region_id,
                enabled=fields.get("enabled", source.enabled),
            )
        )
        for disk in await uow.custom_pricing.list_disks(pricing_id):
            await uow.custom_pricing.add_disk(attrs.evolve(disk, id=0, pricing_id=copy.id))
        return await common.committed(uow, copy, _infos)
