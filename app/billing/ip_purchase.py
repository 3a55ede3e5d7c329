"""Buy IP space: create an inactive subscription with IP-range line items (api.md §6.9)."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from app.billing.errors import BitcoinPriceNeedsLightning, NotFound
from app.billing.ip_room import check_order_room, related_spaces
from app.billing.order_locks import under_space_locks
from domain.enums import IntervalType, SubscriptionType
from domain.errors import DomainError, InvalidInput
from domain.model import AvailableIpSpace, IpSpacePricing, LineItem, Subscription
from domain.money import Currency
from domain.text_rules import check_line
from domain.unpaid_ip_room import DEFAULT_UNPAID_IP_ROOM, UnpaidIpRoom
from ports.clock import Clock
from ports.storage import UnitOfWork, UnitOfWorkFactory

MAX_LINE_ITEMS = 20
NAME_LIMIT = 200
DESCRIPTION_LIMIT = 10_000
#: never-paid IP-range subscriptions one user may hold (`max-unpaid-subscriptions`)
DEFAULT_MAX_UNPAID_SUBSCRIPTIONS = 3
#: how long a never-paid IP-range subscription counts against `max-unpaid-subscriptions`
UNPAID_SUBSCRIPTION_WINDOW = timedelta(days=1)


class IpSpacePricingNotFound(NotFound):
    pass


class IpSpaceUnavailable(DomainError):
    """The space is not offered (unavailable or reserved): 422."""


class MixedCompanies(DomainError):
    """Line items sold by different companies cannot share one subscription (422)."""


class ProductNotAvailable(DomainError):
    """ASN sponsoring and DNS hosting cannot be bought yet (422, as in the reference)."""


@attrs.frozen(kw_only=True)
class IpRangeItem:
    ip_space_pricing_id: int


@attrs.frozen(kw_only=True)
class OtherItem:
    """An `asn_sponsoring` or `dns_hosting` line: known to the API, not sold yet."""

    kind: SubscriptionType


@attrs.frozen(kw_only=True)
class NewSubscription:
    name: str | None = None
    description: str | None = None
    currency: str | None = None
    auto_renewal_enabled: bool | None = None
    line_items: tuple[IpRangeItem | OtherItem, ...] = ()


async def _priced(uow: UnitOfWork, pricing_id: int) -> tuple[IpSpacePricing, AvailableIpSpace]:
    pricing = await uow.ip_space_pricing.get(pricing_id)
    space = None if pricing is None else await uow.ip_spaces.get(pricing.available_ip_space_id)
    if pricing is None or space is None:
        raise IpSpacePricingNotFound("IP space pricing not found")
    if not space.is_available or space.is_reserved:
        raise IpSpaceUnavailable("IP space is not available for allocation")
    return pricing, space


def _currency(requested: str | None, tiers: list[IpSpacePricing]) -> str:
    """The subscription currency: the tiers' own; a different requested one is refused.

    The reference stored whatever was asked (default USD) and labelled the tiers' amounts
    with it (api.md §12.6); here amounts and label always agree.
    """
    own = {Currency.parse(t.currency).value for t in tiers}
    if len(own) > 1:
        raise InvalidInput("All line items must be priced in the same currency")
    [currency] = own
    if requested is not None and Currency.parse(requested).value != currency:
        raise InvalidInput(f"These IP ranges are priced in {currency}, not {requested}")
    return currency


class TooManyUnpaidSubscriptions(DomainError):
    """The user already holds the most never-paid IP-range subscriptions allowed (422)."""


async def _check_unpaid(uow: UnitOfWork, user_id: int, max_unpaid: int, now: datetime) -> None:
    """Fewer than `max_unpaid` never-paid IP-range subscriptions made in the last
    `UNPAID_SUBSCRIPTION_WINDOW` and not cleaned up, counted in one statement under the
    user's row lock so that concurrent purchases count one after another (as VM orders do,
    D25).

    The worker cancels one an hour after it was made (`app.worker.unpaid_subscriptions`),
    which frees its place as a deleted never-paid VM frees its own; the window still bounds
    the count should the worker fall behind. A subscription selling a VM as well as an IP
    range counts here too (its VM also counts against `max-unpaid-vms`).
    """
    await uow.users.lock(user_id)
    since = now - UNPAID_SUBSCRIPTION_WINDOW
    unpaid = await uow.subscriptions.count_never_paid_ip_ranges(user_id, since)
    if unpaid >= max_unpaid:
        raise TooManyUnpaidSubscriptions(
            f"You already have {unpaid} unpaid subscriptions (at most {max_unpaid}): pay for one"
            " before buying more"
        )


async def create_subscription(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    user_id: int,
    request: NewSubscription,
    max_unpaid: int | None = DEFAULT_MAX_UNPAID_SUBSCRIPTIONS,
    unpaid_ip: UnpaidIpRoom = DEFAULT_UNPAID_IP_ROOM,
    *,
    bitcoin_payable: bool = True,
) -> tuple[Subscription, list[LineItem]]:
    """An inactive, not set up, monthly subscription of IP ranges (paid through `renew`).

    Each `ip_range` line costs its tier's monthly price with its setup fee; the company is the
    IP space's. No CIDR is allocated here: the first payment's booking gives each line its
    block (`app.billing.ip_allocation`; the reference allocated none, §12.4). Refused (422)
    while the user holds `max_unpaid` never-paid ones (None: no cap), when its blocks would
    take the addresses the user's never-paid orders hold past `unpaid_ip`'s budget, and
    when a space has no free block of the size left beside the ranges in use and the blocks
    other unpaid orders hold, or its never-paid orders would pass `unpaid_ip`'s share of it
    (`check_order_room`); the order then holds its blocks for its payment window.
    `bitcoin_payable` False (Lightning off): tiers priced in BTC are refused (422), since
    no other rail charges bitcoin and the order would hold its blocks unpayable.
    """
    if not request.line_items:
        raise InvalidInput("At least one line item is required")
    if len(request.line_items) > MAX_LINE_ITEMS:
        raise InvalidInput(f"At most {MAX_LINE_ITEMS} line items are allowed")
    for item in request.line_items:
        if isinstance(item, OtherItem):
            label = (
                "ASN sponsoring" if item.kind is SubscriptionType.ASN_SPONSORING else "DNS hosting"
            )
            raise ProductNotAvailable(f"{label} not yet implemented")
    if request.name is not None:
        check_line(request.name, "name", NAME_LIMIT)
    if request.description is not None:
        check_line(request.description, "description", DESCRIPTION_LIMIT, multiline=True)
    now = clock.now()
    return await under_space_locks(
        await _spaces_of(uow_factory, request),
        lambda spaces: _create(
            uow_factory, now, user_id, request, (max_unpaid, unpaid_ip, bitcoin_payable), spaces
        ),
    )


async def _spaces_of(uow_factory: UnitOfWorkFactory, request: NewSubscription) -> frozenset[int]:
    """The spaces the order sells from, and those overlapping them: read in a short
    transaction of its own, as an order reads its region (`offer_region`), so that the
    order's transaction takes their locks before its first plain read."""
    async with uow_factory() as uow:
        ids = set()
        for item in request.line_items:
            if isinstance(item, IpRangeItem):
                tier = await uow.ip_space_pricing.get(item.ip_space_pricing_id)
                if tier is not None:
                    ids.add(tier.available_ip_space_id)
        return related_spaces({s.id: s for s in await uow.ip_spaces.list_all()}, ids)


async def _create(
    uow_factory: UnitOfWorkFactory,
    now: datetime,
    user_id: int,
    request: NewSubscription,
    caps: tuple[int | None, UnpaidIpRoom, bool],
    spaces: frozenset[int],
) -> tuple[Subscription, list[LineItem]]:
    max_unpaid, unpaid_ip, bitcoin_payable = caps
    async with uow_factory() as uow:
        # the buyer's lock, then the spaces', before the first plain read (as VM orders
        # take the user's and the region's): orders of one space are judged one by one
        await uow.users.lock(user_id)
        for space_id in sorted(spaces):
            await uow.ip_spaces.lock(space_id)
        if max_unpaid is not None:
            await _check_unpaid(uow, user_id, max_unpaid, now)
        priced = [
            await _priced(uow, item.ip_space_pricing_id)
            for item in request.line_items
            if isinstance(item, IpRangeItem)
        ]
        companies = {space.company_id for _, space in priced}
        if len(companies) != 1:
            raise MixedCompanies("All line items must belong to the same company")
        currency = _currency(request.currency, [tier for tier, _ in priced])
        if currency == Currency.BTC.value and not bitcoin_payable:
            raise BitcoinPriceNeedsLightning(
                "These IP ranges are priced in BTC, which only Lightning can pay, and this"
                " server takes no Lightning payments"
            )
        await check_order_room(uow, priced, now, spaces, user_id=user_id, limits=unpaid_ip)
        items = [
            LineItem(
                id=0,
                subscription_id=0,
                subscription_type=SubscriptionType.IP_RANGE,
                name=f"IP Range: /{tier.prefix_size} from {space.cidr}",
                description=f"/{tier.prefix_size} IP range from {space.cidr} block",
                amount=tier.price_per_month,
                setup_amount=tier.setup_fee,
                configuration={
                    "ip_space_pricing_id": tier.id,
                    "available_ip_space_id": space.id,
                    "prefix_size": tier.prefix_size,
                },
            )
            for tier, space in priced
        ]
        auto_renew = request.auto_renewal_enabled
        sub, stored = await uow.subscriptions.add_with_line_items(
            Subscription(
                id=0,
                user_id=user_id,
                company_id=companies.pop(),
                name=request.name if request.name is not None else "Subscription",
                description=request.description,
                created=now,
                currency=currency,
                interval_amount=1,
                interval_type=IntervalType.MONTH,
                setup_fee=sum(i.setup_amount for i in items),
                auto_renewal_enabled=True if auto_renew is None else auto_renew,
            ),
            items,
        )
        await uow.commit()
    return sub, stored
