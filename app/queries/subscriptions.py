"""The caller's subscriptions with their line items, and their payments (api.md §6.9), read in
the caller's unit of work."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from app.billing.errors import SubscriptionNotFound
from domain.enums import SubscriptionType
from domain.model import IpRangeSubscription, LineItem, Subscription, SubscriptionPayment
from ports.storage import Page, UnitOfWork


@attrs.frozen
class SubscriptionView:
    """A subscription with its line items; `currencies`: the currency of an item's `amount`
    by line item id where it is not the subscription's (`ShownItems`)."""

    subscription: Subscription
    line_items: list[LineItem]
    currencies: Mapping[int, str] = attrs.field(factory=dict)


async def owned_subscription(uow: UnitOfWork, subscription_id: int, user_id: int) -> Subscription:
    """The subscription if it is the caller's; another user's is "not found" too (D19)."""
    sub = await uow.subscriptions.get(subscription_id)
    if sub is None or sub.user_id != user_id:
        raise SubscriptionNotFound("Subscription not found")
    return sub


async def list_subscriptions(
    uow: UnitOfWork, user_id: int, limit: int, offset: int
) -> Page[SubscriptionView]:
    """Newest first (id descending), VM subscriptions included; the page's line items, with
    the currency each amount is in, in one query whatever its size."""
    page = await uow.subscriptions.list_by_user(user_id, limit, offset)
    shown = await uow.line_items.list_shown([s.id for s in page.items])
    views = [SubscriptionView(s, shown.items.get(s.id, []), shown.currencies) for s in page.items]
    return Page(views, page.total)


async def get_subscription(uow: UnitOfWork, subscription_id: int, user_id: int) -> SubscriptionView:
    sub = await owned_subscription(uow, subscription_id, user_id)
    shown = await uow.line_items.list_shown([sub.id])
    return SubscriptionView(sub, shown.items.get(sub.id, []), shown.currencies)


async def list_subscription_payments(
    uow: UnitOfWork, subscription_id: int, user_id: int, limit: int, offset: int
) -> Page[SubscriptionPayment]:
    """The subscription's payments of every type, newest first."""
    sub = await owned_subscription(uow, subscription_id, user_id)
    return await uow.payments.list_by_subscription(sub.id, limit, offset)


@attrs.frozen
class RangeView:
    """An IP range given to a subscription, with the CIDR of the space it was given from
    (None when that space is gone)."""

    record: IpRangeSubscription
    parent_cidr: str | None


async def list_subscription_ranges(
    uow: UnitOfWork, subscription_id: int, user_id: int, limit: int, offset: int
) -> Page[RangeView]:
    """The ranges given to the subscription's IP-range line items, ended ones too, newest
    first (a subscription holds a handful: read whole, then paged)."""
    sub = await owned_subscription(uow, subscription_id, user_id)
    ranges: list[IpRangeSubscription] = []
    for item in await uow.line_items.list_by_subscription(sub.id):
        if item.subscription_type is SubscriptionType.IP_RANGE:
            ranges.extend(await uow.ip_range_subscriptions.list_by_line_item(item.id))
    ranges.sort(key=lambda r: r.id, reverse=True)
    page = ranges[offset : offset + limit]
    parents: dict[int, str | None] = {}
    for r in page:
        if r.available_ip_space_id not in parents:
            space = await uow.ip_spaces.get(r.available_ip_space_id)
            parents[r.available_ip_space_id] = None if space is None else space.cidr
    return Page([RangeView(r, parents[r.available_ip_space_id]) for r in page], len(ranges))
