"""What the public catalogue shows: offers with room left, images, payment methods, IP space."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction

import attrs

from app.billing.address_room import ipv4_left
from app.billing.catalogue import orderable_spec, pricing_with_disks
from app.billing.errors import NotFound
from app.billing.ip_room import unsellable
from app.queries.capacity import HostRoom, rooms_by_region
from domain.enums import DiskInterface, DiskType, PaymentMethod
from domain.errors import NoExchangeRate, UnknownCurrency
from domain.exchange import RateTable, convert
from domain.ip_blocks import parse_block
from domain.model import (
    AvailableIpSpace,
    CostPlan,
    CustomPricing,
    IpSpacePricing,
    OsImage,
    PaymentMethodConfig,
    Region,
    VmTemplate,
)
from domain.money import Currency, Money
from domain.pricing import custom_price, parse_list_currency, plan_price
from domain.unpaid_ip_room import DEFAULT_UNPAID_IP_ROOM, UnpaidIpRoom, orderable_alone
from domain.unpaid_room import DEFAULT_HOST_SHARE
from ports.cache import CatalogueCache
from ports.clock import Clock
from ports.rates import RateStore
from ports.storage import Page, UnitOfWork, UnitOfWorkFactory

#: room on the hosts changes with every order and deletion, not only with admin changes: the
#: listing (capacity computed per host) may lag that much behind; admin changes clear it at once.
OFFERS_TTL_S = 5.0
#: images and payment methods change only through the admin API, which invalidates them; the
#: TTL is a safety net for a node that missed a message.
CATALOGUE_TTL_S = 300.0


class IpSpaceNotFound(NotFound):
    pass


def other_prices(price: Money, rates: RateTable, now: datetime) -> list[Money]:
    """The price in BTC and every other currency with a fresh rate (api.md §8.6), exact (D2).

    A currency without a usable rate is left out; a fiat price whose own rate is missing
    has no conversions at all. Order: BTC, then the fiats in declaration order.
    """
    fresh = set()
    for currency in Currency:
        if currency.is_fiat:
            try:
                rates.btc_rate(currency, now)
            except NoExchangeRate:
                continue
            fresh.add(currency)
    if price.currency.is_fiat and price.currency not in fresh:
        return []
    targets = [Currency.BTC, *(c for c in Currency if c in fresh)]
    targets = [c for c in targets if c is not price.currency]
    return [convert(price, target, rates, now) for target in targets]


@attrs.frozen(kw_only=True)
class TemplateOffer:
    template: VmTemplate
    plan: CostPlan
    region: Region
    other_price: list[Money]


@attrs.frozen(kw_only=True)
class DiskOffer:
    kind: DiskType
    interface: DiskInterface
    min_disk: int
    max_disk: int


@attrs.frozen(kw_only=True)
class CustomOffer:
    """A custom pricing with its limits capped by the room its region's hosts have left."""

    pricing: CustomPricing
    region: Region
    max_cpu: int
    max_memory: int
    disks: tuple[DiskOffer, ...]


@attrs.frozen(kw_only=True)
class Offers:
    templates: list[TemplateOffer]
    custom: list[CustomOffer]


def _current(expires: datetime | None, now: datetime) -> bool:
    return expires is None or expires >= now


async def _custom_offer(
    uow: UnitOfWork, pricing: CustomPricing, region: Region, rooms: list[HostRoom]
) -> CustomOffer | None:
    matching = [r for r in rooms if r.matches_cpu(pricing)]
    max_cpu = min(pricing.max_cpu, max((r.cpu for r in matching), default=0))
    max_memory = min(pricing.max_memory, max((r.memory for r in matching), default=0))
    disks = []
    for row in await uow.custom_pricing.list_disks(pricing.id):
        room = max((r.disk_free(row.kind, row.interface) for r in matching), default=0)
        cap = min(row.max_disk_size, room)
        if cap > 0 and cap >= row.min_disk_size:
            disks.append(
                DiskOffer(
                    kind=row.kind, interface=row.interface, min_disk=row.min_disk_size, max_disk=cap
                )
            )
    if max_cpu < max(1, pricing.min_cpu) or max_memory < max(1, pricing.min_memory) or not disks:
        return None
    return CustomOffer(
        pricing=pricing, region=region, max_cpu=max_cpu, max_memory=max_memory, disks=tuple(disks)
    )


def _plan_other_prices(plan: CostPlan, rates: RateTable, now: datetime) -> list[Money]:
    try:
        return other_prices(plan_price(plan), rates, now)
    except UnknownCurrency:
        return []  # a plan row with a bad currency: no conversions rather than a failed listing


async def _addressable(
    uow: UnitOfWork, regions: list[Region], now: datetime, unpaid_share: Fraction | None
) -> list[Region]:
    """The regions where a new order would still be promised an IPv4 address: the rule
    ordering applies under the region's lock (`ipv4_left` with the never-paid orders'
    `unpaid_share`, as every new order is unpaid). The reference only caps a custom
    pricing to 0 where no range has a free address; here an order is also refused when
    the addresses left are promised to VMs waiting for their build or when never-paid
    orders hold their share of them (D25), so both kinds of offer are hidden there, not
    offered and then refused with 422. Like the host room this follows orders coming and
    going, which the offers' short cache TTL (`OFFERS_TTL_S`) already allows for."""
    left = [await ipv4_left(uow, r.id, now, None, unpaid_share=unpaid_share) for r in regions]
    return [region for region, n in zip(regions, left, strict=True) if n > 0]


async def list_offers(
    uow_factory: UnitOfWorkFactory,
    rates: RateTable,
    now: datetime,
    unpaid_share: Fraction | None = DEFAULT_HOST_SHARE,
) -> Offers:
    """Orderable offers (api.md §8.7): enabled and unexpired, in enabled regions, with room.

    A standard template is listed when some enabled host of its region whose CPU it runs on
    can take it now (the rule ordering applies, with the hosts' `unpaid_share` for
    never-paid orders: a new order is one); a custom pricing's maxima are capped by the
    best free room of the region's hosts whose CPU matches, and it is left out when
    nothing would fit.

    Neither is listed in a region a new order could get no IPv4 address in (`_addressable`):
    every order is refused there, whatever its size.
    """
    async with uow_factory() as uow:
        enabled = [r for r in await uow.regions.list_all() if r.enabled]
        regions = {r.id: r for r in await _addressable(uow, enabled, now, unpaid_share)}
        rooms = await rooms_by_region(uow, list(regions.values()), now, unpaid_share)
        plans = {p.id: p for p in await uow.cost_plans.list_all()}
        templates = []
        for t in await uow.templates.list_all():
            region, plan = regions.get(t.region_id), plans.get(t.cost_plan_id)
            if not t.enabled or region is None or plan is None or not _current(t.expires, now):
                continue
            region_rooms = rooms.get(region.id, [])
            if any(r.fits(t, t.disk_interface) and r.matches_cpu(t) for r in region_rooms):
                other = _plan_other_prices(plan, rates, now)
                templates.append(
                    TemplateOffer(template=t, plan=plan, region=region, other_price=other)
                )
        custom = []
        for pricing in await uow.custom_pricing.list_all():
            region = regions.get(pricing.region_id)
            if not pricing.enabled or region is None or not _current(pricing.expires, now):
                continue
            offer = await _custom_offer(uow, pricing, region, rooms.get(region.id, []))
            if offer is not None:
                custom.append(offer)
    return Offers(templates=templates, custom=custom)


async def cached_offers(
    cache: CatalogueCache | None,
    uow_factory: UnitOfWorkFactory,
    rates: RateStore,
    clock: Clock,
    unpaid_share: Fraction | None = DEFAULT_HOST_SHARE,
) -> Offers:
    """`list_offers` through the catalogue cache (loaded at most once per TTL per node)."""

    async def load() -> Offers:
        return await list_offers(uow_factory, await rates.table(), clock.now(), unpaid_share)

    return await load() if cache is None else await cache.get("offers", load, ttl=OFFERS_TTL_S)


async def cached_images(
    cache: CatalogueCache | None, uow_factory: UnitOfWorkFactory
) -> list[OsImage]:
    """`list_images` through the catalogue cache."""

    async def load() -> list[OsImage]:
        return await list_images(uow_factory)

    return await load() if cache is None else await cache.get("images", load, ttl=CATALOGUE_TTL_S)


async def cached_payment_methods(
    cache: CatalogueCache | None, uow_factory: UnitOfWorkFactory
) -> MethodListing:
    """`list_payment_methods` through the catalogue cache."""

    async def load() -> MethodListing:
        return await list_payment_methods(uow_factory)

    if cache is None:
        return await load()
    return await cache.get("payment_methods", load, ttl=CATALOGUE_TTL_S)


async def list_images(uow_factory: UnitOfWorkFactory) -> list[OsImage]:
    """Enabled OS images, ascending id."""
    async with uow_factory() as uow:
        return [i for i in await uow.images.list_all() if i.enabled]


@attrs.frozen(kw_only=True)
class CustomSpecRequest:
    pricing_id: int
    cpu: int
    memory: int
    disk: int
    disk_type: DiskType
    disk_interface: DiskInterface


async def custom_spec_price(uow_factory: UnitOfWorkFactory, request: CustomSpecRequest) -> Money:
    """Monthly price of a custom spec in the pricing's currency, one IPv4 + one IPv6 (§8.3).

    Unlike the reference the spec must be orderable: a disk of that type and interface
    (400) and within the pricing's limits (D21, 400).
    """
    async with uow_factory() as uow:
        pricing, disks = await pricing_with_disks(uow, request.pricing_id)
    spec = orderable_spec(
        pricing,
        disks,
        request.cpu,
        request.memory,
        request.disk,
        request.disk_type,
        request.disk_interface,
    )
    return custom_price(spec, pricing, disks).total


@attrs.frozen(kw_only=True)
class MethodListing:
    configs: list[PaymentMethodConfig]
    lightning: bool

    def without_lightning(self) -> MethodListing:
        """The listing of a server with Lightning off: no Lightning config row (one left
        from before the switch, an adopted database's), so no `nwc` or `lnurl` either."""
        kept = [c for c in self.configs if c.payment_method is not PaymentMethod.LIGHTNING]
        return MethodListing(configs=kept, lightning=False)


async def list_payment_methods(uow_factory: UnitOfWorkFactory) -> MethodListing:
    """Enabled configs of every company by (company, method, name) (api.md §6.6)."""
    async with uow_factory() as uow:
        configs = [c for c in await uow.payment_methods.list_all() if c.enabled]
    configs.sort(key=lambda c: (c.company_id, c.payment_method, c.name, c.id))
    lightning = any(c.payment_method is PaymentMethod.LIGHTNING for c in configs)
    return MethodListing(configs=configs, lightning=lightning)


@attrs.frozen(kw_only=True)
class PricedTier:
    tier: IpSpacePricing
    price: Money
    setup_fee: Money
    other_price: list[Money]
    other_setup_fee: list[Money]


@attrs.frozen(kw_only=True)
class IpSpaceOffer:
    space: AvailableIpSpace
    tiers: list[PricedTier]


def _listed(space: AvailableIpSpace) -> bool:
    return space.is_available and not space.is_reserved


def _offered(space: AvailableIpSpace, tier: IpSpacePricing, limits: UnpaidIpRoom) -> bool:
    """Whether a new order of the tier could be taken: the space can hold its size and
    every new order being unpaid, it fits what unpaid orders may hold (`orderable_alone`);
    a tier always refused is not offered, as a region with no address is not (the order's
    own check decides, with what is held and taken now)."""
    net = parse_block(space.cidr)
    if net is None or unsellable(space, tier.prefix_size) is not None:
        return False
    return orderable_alone(limits, net.version, tier.prefix_size, net.num_addresses)


def _offer(
    space: AvailableIpSpace,
    tiers_of_space: list[IpSpacePricing],
    limits: UnpaidIpRoom,
    rates: RateTable,
    now: datetime,
) -> IpSpaceOffer:
    tiers = []
    for tier in tiers_of_space:
        if not _offered(space, tier, limits):
            continue
        currency = parse_list_currency(tier.currency)
        price, setup = Money(currency, tier.price_per_month), Money(currency, tier.setup_fee)
        tiers.append(
            PricedTier(
                tier=tier,
                price=price,
                setup_fee=setup,
                other_price=other_prices(price, rates, now),
                other_setup_fee=other_prices(setup, rates, now),
            )
        )
    return IpSpaceOffer(space=space, tiers=tiers)


async def list_ip_spaces(
    uow_factory: UnitOfWorkFactory,
    rates: RateTable,
    now: datetime,
    limit: int,
    offset: int,
    limits: UnpaidIpRoom = DEFAULT_UNPAID_IP_ROOM,
) -> Page[IpSpaceOffer]:
    """Available, unreserved spaces, newest first (api.md §6.10), each with the tiers a new
    order can take (`_offered`); two reads whatever the number of spaces and tiers."""
    async with uow_factory() as uow:
        spaces = [s for s in await uow.ip_spaces.list_all() if _listed(s)]
        spaces.sort(key=lambda s: (s.created, s.id), reverse=True)
        page = spaces[offset : offset + limit]
        tiers: dict[int, list[IpSpacePricing]] = {s.id: [] for s in page}
        if page:
            for tier in await uow.ip_space_pricing.list_all():
                tiers.get(tier.available_ip_space_id, []).append(tier)
    offers = [_offer(s, sorted(tiers[s.id], key=_by_size), limits, rates, now) for s in page]
    return Page(offers, len(spaces))


def _by_size(tier: IpSpacePricing) -> tuple[int, int]:
    return tier.prefix_size, tier.id


async def get_ip_space(
    uow_factory: UnitOfWorkFactory,
    space_id: int,
    rates: RateTable,
    now: datetime,
    limits: UnpaidIpRoom = DEFAULT_UNPAID_IP_ROOM,
) -> IpSpaceOffer:
    """One listed space; an unknown, unavailable or reserved one is "not found" (404)."""
    async with uow_factory() as uow:
        space = await uow.ip_spaces.get(space_id)
        if space is None or not _listed(space):
            raise IpSpaceNotFound("IP space not available")
        tiers = await uow.ip_space_pricing.list_by_space(space.id)
    return _offer(space, tiers, limits, rates, now)
