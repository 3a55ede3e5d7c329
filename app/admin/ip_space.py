"""Admin IP space for sale and its prices (api.md §9.14, §9.15): checked CIDRs and prefixes."""

from __future__ import annotations

import ipaddress
from typing import Any

import attrs

from app.admin import catalogue_common as common
from app.billing.errors import NotFound
from app.billing.ip_room import range_asked
from domain.errors import DomainError, InvalidInput
from domain.ip_blocks import overlaps, parse_block
from domain.model import AvailableIpSpace, IpRangeSubscription, IpSpacePricing
from ports.clock import Clock
from ports.storage import UnitOfWork, UnitOfWorkFactory

#: the longest prefix the RIRs route (a smaller block is filtered out of BGP tables).
RIR_MIN_PREFIX = {4: 24, 6: 48}


@attrs.frozen
class SpaceInfo:
    space: AvailableIpSpace
    pricing_count: int


@attrs.frozen
class SoldRange:
    """A range sold from a space, with who holds it."""

    record: IpRangeSubscription
    subscription_id: int | None
    user_id: int | None
    parent_cidr: str


class PricingNotFound(NotFound):
    pass


class OverlapsVmRange(DomainError):
    """An IP space would overlap a VM address range (`ip_range`) of a region (409)."""

    kind = "conflict"


def _checked_space(space: AvailableIpSpace) -> AvailableIpSpace:
    """The CIDR parses (host bits clear) and the sellable prefixes fit in it and in BGP."""
    if not space.cidr.strip():
        raise InvalidInput("CIDR is required")
    try:
        net = ipaddress.ip_network(space.cidr.strip(), strict=True)
    except ValueError:
        raise InvalidInput("Invalid CIDR format") from None
    top = net.max_prefixlen
    if space.min_prefix_size < space.max_prefix_size:
        raise InvalidInput(
            "min_prefix_size must be greater than or equal to max_prefix_size "
            "(smaller prefix number = larger block)"
        )
    rir = RIR_MIN_PREFIX[net.version]
    if space.max_prefix_size > rir:
        raise InvalidInput(
            f"max_prefix_size /{space.max_prefix_size} is too small for BGP "
            f"announcement (RIR minimum: /{rir})"
        )
    if space.max_prefix_size < net.prefixlen:
        raise InvalidInput(
            f"max_prefix_size /{space.max_prefix_size} cannot be larger than "
            f"parent CIDR /{net.prefixlen}"
        )
    if space.min_prefix_size > top:
        raise InvalidInput(f"min_prefix_size /{space.min_prefix_size} exceeds maximum /{top}")
    return attrs.evolve(space, cidr=str(net))


async def _counts(uow: UnitOfWork, spaces: list[AvailableIpSpace]) -> list[SpaceInfo]:
    return [SpaceInfo(s, len(await uow.ip_space_pricing.list_by_space(s.id))) for s in spaces]


async def list_spaces(
    uow_factory: UnitOfWorkFactory, is_available: bool | None, registry: int | None
) -> list[SpaceInfo]:
    """Newest first."""
    async with uow_factory() as uow:
        rows = await uow.ip_spaces.list_all()
        spaces = common.matching(rows, is_available=is_available, registry=registry)
        spaces.sort(key=lambda s: (s.created, s.id), reverse=True)
        return await _counts(uow, spaces)


async def _space(uow: UnitOfWork, space_id: int) -> AvailableIpSpace:
    return await common.existing(uow.ip_spaces, space_id, "IP space")


async def get_space(uow_factory: UnitOfWorkFactory, space_id: int) -> SpaceInfo:
    return await common.info_of(uow_factory, _space, space_id, _counts)


async def _check_space(uow: UnitOfWork, space: AvailableIpSpace, was: str | None = None) -> None:
    """The company exists, no other space has the CIDR, and a new or changed CIDR overlaps
    no VM address range (`_check_vm_ranges`); `was`: the CIDR stored before this edit."""
    await common.check_reference(uow.companies, space.company_id, "Company")
    for other in await uow.ip_spaces.list_all():
        if other.id != space.id and other.cidr == space.cidr:
            raise common.Duplicate(f"IP space {space.cidr} already exists")
    if was is None or parse_block(space.cidr) != parse_block(was):
        await _check_vm_ranges(uow, space)


async def _check_vm_ranges(uow: UnitOfWork, space: AvailableIpSpace) -> None:
    """Refuse (409) a space overlapping a region's VM address range, enabled or not: the
    build gives VMs its addresses, so a block sold there would hold other customers' VMs.
    Only a new or changed CIDR is judged, so a space that overlapped one before this rule
    (an adopted database) can still be edited, marked unavailable or deleted; blocks are
    never given from its overlapping part anyway (`app.billing.ip_room.pool_blocks`)."""
    net = parse_block(space.cidr)
    for pool in await uow.ip_ranges.list_all():
        other = parse_block(pool.cidr)
        if net is not None and other is not None and overlaps(net, other):
            raise OverlapsVmRange(
                f"IP space {space.cidr} overlaps VM address range {pool.cidr} of region "
                f"{pool.region_id}: its addresses are given to VMs and cannot be sold"
            )


async def create_space(
    uow_factory: UnitOfWorkFactory, clock: Clock, fields: common.Fields
) -> SpaceInfo:
    """Without `company_id` (the LNVPS admin front end sends none) the first company sells."""
    now = clock.now()
    changes = dict(fields)
    async with uow_factory() as uow:
        if changes.get("company_id") is None:
            companies = await uow.companies.list_all()
            if not companies:
                raise common.UnknownReference(
                    "Create a company first: IP space belongs to a company"
                )
            changes["company_id"] = companies[0].id
        space = _checked_space(
            common.evolve(
                AvailableIpSpace(
                    id=0,
                    company_id=0,
                    cidr="",
                    min_prefix_size=0,
                    max_prefix_size=0,
                    registry=fields["registry"],
                    created=now,
                    updated=now,
                ),
                changes,
            )
        )
        await _check_space(uow, space)
        stored = await uow.ip_spaces.add(space)
        await uow.commit()
    return SpaceInfo(stored, 0)


async def update_space(
    uow_factory: UnitOfWorkFactory, clock: Clock, space_id: int, fields: common.Fields
) -> SpaceInfo:
    async with uow_factory() as uow:
        stored = await _space(uow, space_id)
        space = _checked_space(common.evolve(stored, {**fields, "updated": clock.now()}))
        await _check_space(uow, space, was=stored.cidr)
        await uow.ip_spaces.update(space)
        return await common.committed(uow, space, _counts)


_IN_USE = "Cannot delete IP space with active subscriptions. Please cancel subscriptions first."


async def delete_space(uow_factory: UnitOfWorkFactory, space_id: int) -> None:
    """Refused while an active subscription (paid, or expired within its grace) sells a
    range of it, whether or not the range was given yet, and while ranges sold from it
    exist (ended ones too: they keep its history). Under the space's lock, which a booking
    giving a range of it holds too, so no sale slips in between the check and the delete."""
    async with uow_factory() as uow:
        await uow.ip_spaces.lock(space_id)
        await _space(uow, space_id)
        for item in await uow.ip_range_subscriptions.items_of_active_subscriptions():
            asked = range_asked(item)
            if asked is not None and asked.space_id == space_id:
                raise common.InUse(_IN_USE)
        sold = await uow.ip_range_subscriptions.list_by_space(space_id)
        if any(r.is_active for r in sold):
            raise common.InUse(_IN_USE)
        if sold:
            raise common.InUse("Cannot delete IP space: ranges sold from it are still on record")
        for price in await uow.ip_space_pricing.list_by_space(space_id):
            await uow.ip_space_pricing.remove(price.id)
        await uow.ip_spaces.remove(space_id)
        await uow.commit()


# --- pricing -------------------------------------------------------------------------------


async def list_pricing(uow_factory: UnitOfWorkFactory, space_id: int) -> list[IpSpacePricing]:
    """Id descending."""
    async with uow_factory() as uow:
        await _space(uow, space_id)
        rows = await uow.ip_space_pricing.list_by_space(space_id)
    return sorted(rows, key=lambda p: p.id, reverse=True)


async def _price(uow: UnitOfWork, space_id: int, pricing_id: int) -> IpSpacePricing:
    """The pricing row of that space; another space's row is not found here (the reference
    would delete it through any space id)."""
    await _space(uow, space_id)
    price = await uow.ip_space_pricing.get(pricing_id)
    if price is None:
        raise PricingNotFound("IP space pricing not found")
    if price.available_ip_space_id != space_id:
        raise PricingNotFound("Pricing does not belong to the specified IP space")
    return price


async def get_pricing(
    uow_factory: UnitOfWorkFactory, space_id: int, pricing_id: int
) -> IpSpacePricing:
    async with uow_factory() as uow:
        return await _price(uow, space_id, pricing_id)


def _price_changes(fields: common.Fields) -> dict[str, Any]:
    changes = dict(fields)
    if "price_per_month" in changes and not changes["price_per_month"]:
        raise InvalidInput("price_per_month cannot be 0")
    if "currency" in changes:
        changes["currency"] = common.price_currency(changes["currency"] or "")
    return changes


async def _check_price(uow: UnitOfWork, space: AvailableIpSpace, price: IpSpacePricing) -> None:
    if not space.max_prefix_size <= price.prefix_size <= space.min_prefix_size:
        raise InvalidInput(
            f"Prefix size must be between /{space.max_prefix_size} and /{space.min_prefix_size}"
        )
    for other in await uow.ip_space_pricing.list_by_space(space.id):
        if other.id != price.id and other.prefix_size == price.prefix_size:
            raise common.Duplicate(f"Pricing already exists for prefix size /{price.prefix_size}")


async def create_pricing(
    uow_factory: UnitOfWorkFactory, clock: Clock, space_id: int, fields: common.Fields
) -> IpSpacePricing:
    now = clock.now()
    changes = _price_changes(fields)
    async with uow_factory() as uow:
        space = await _space(uow, space_id)
        price = common.evolve(
            IpSpacePricing(
                id=0,
                available_ip_space_id=space_id,
                prefix_size=0,
                price_per_month=0,
                created=now,
                updated=now,
            ),
            changes,
        )
        await _check_price(uow, space, price)
        stored = await uow.ip_space_pricing.add(price)
        await uow.commit()
    return stored


async def update_pricing(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    space_id: int,
    pricing_id: int,
    fields: common.Fields,
) -> IpSpacePricing:
    """A new price here changes no subscription's price in force, so it expires nothing:
    a sold range's renewal is priced at its line item's `amount`, fixed when it was sold
    (`price_in_force`, `quotes.price_subscription`); only new sales pay the new price.
    (Should ranges ever be re-priced from this table, their pending quotes must be expired
    here, D23.)"""
    changes = _price_changes(fields)
    async with uow_factory() as uow:
        price = common.evolve(
            await _price(uow, space_id, pricing_id), {**changes, "updated": clock.now()}
        )
        await _check_price(uow, await _space(uow, space_id), price)
        await uow.ip_space_pricing.update(price)
        await uow.commit()
    return price  # type: ignore[no-any-return]


async def delete_pricing(uow_factory: UnitOfWorkFactory, space_id: int, pricing_id: int) -> None:
    async with uow_factory() as uow:
        await _price(uow, space_id, pricing_id)
        await uow.ip_space_pricing.remove(pricing_id)
        await uow.commit()


# --- ranges sold ---------------------------------------------------------------------------


async def list_sold(
    uow_factory: UnitOfWorkFactory, space_id: int, user_id: int | None, is_active: bool | None
) -> list[SoldRange]:
    """Ranges sold from the space, newest first, with their subscription and its user."""
    async with uow_factory() as uow:
        space = await _space(uow, space_id)
        out = []
        for record in await uow.ip_range_subscriptions.list_by_space(space_id):
            if is_active is not None and record.is_active != is_active:
                continue
            subscription = await uow.subscriptions.get_by_line_item(
                record.subscription_line_item_id
            )
            owner = subscription.user_id if subscription else None
            if user_id is not None and owner != user_id:
                continue
            out.append(
                SoldRange(record, subscription.id if subscription else None, owner, space.cidr)
            )
    out.sort(key=lambda r: r.record.id, reverse=True)
    return out
