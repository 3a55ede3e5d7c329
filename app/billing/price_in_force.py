"""The price a subscription is in force at, recorded on quotes; stale quotes ended (D23)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.billing.catalogue import VmPrice, plan_vm_price, vm_price
from app.billing.errors import UserNotFound, VmDeleted, VmNotFound
from app.billing.rails import PaymentRails
from domain.enums import SubscriptionPaymentType, SubscriptionType
from domain.errors import DomainError, found
from domain.exchange import RateTable
from domain.intervals import Interval
from domain.model import LineItem, Subscription, SubscriptionPayment
from domain.money import Currency, Money
from domain.price_basis import PRICE_KEY, RATES_KEY, PriceBasis, rates_json
from domain.pricing import parse_list_currency
from domain.tax import country_alpha3
from ports.storage import PendingOf, PricedBy, PricedItems, UnitOfWork, VmOnPlan

log = logging.getLogger(__name__)

#: the payments a price change makes stale: everything that buys time at a quoted price.
TIME_BUYING = (SubscriptionPaymentType.PURCHASE, SubscriptionPaymentType.RENEWAL)
#: what a re-priced catalogue row makes stale on the VMs it prices: the time-buying quotes
#: and the upgrade quotes, whose charge discounts the VM's price (and, for a custom VM,
#: prices its growth on the same pricing)
REPRICED = (*TIME_BUYING, SubscriptionPaymentType.UPGRADE)
UPGRADES = (SubscriptionPaymentType.UPGRADE,)


async def vm_price_on(uow: UnitOfWork, on_plan: VmOnPlan | None) -> VmPrice:
    """The current price of a line item's VM as read on its plan; `VmNotFound` without one."""
    if on_plan is None:
        raise VmNotFound("VM not found")
    if on_plan.template is not None and on_plan.cost_plan is not None:
        return plan_vm_price(on_plan.template, on_plan.cost_plan)
    return await vm_price(uow, on_plan.vm)  # a custom VM, or the error of a missing row


def refuse_deleted_vm(read: PricedItems) -> None:
    """`VmDeleted` (422) when a VPS item of what `read` holds has no VM that is not deleted:
    such a subscription is not quoted, nor is a quote of it stored once its VM is deleted
    (by an admin, the grace period or the unpaid cleanup). D24 revives a deleted VM only
    for a payment that was pending when it was deleted."""
    for item in read.items:
        if item.subscription_type is SubscriptionType.VPS and item.id not in read.vms:
            raise VmDeleted("The VM of this subscription was deleted: it cannot be renewed")


async def price_in_force(
    uow: UnitOfWork, sub: Subscription, *, purchase: bool, read: PricedItems | None = None
) -> PriceBasis:
    """What one interval of `sub` costs now, the way `quotes.price_subscription` prices it.

    A VM line item costs its plan or custom price (the first VM's interval counts the time);
    any other item its `amount` in the subscription currency; a Purchase adds every item's
    setup fee. The buyer's tax country is recorded alongside. The line items as stored now,
    their VMs, templates, plans and the user are read in one statement (`priced_items`), or
    given as `read` by a caller that read them already.
    """
    priced = read if read is not None else await priced_items(uow, sub)
    prices = {
        item.id: await vm_price_on(uow, priced.vms.get(item.id))
        for item in priced.items
        if item.subscription_type is SubscriptionType.VPS
    }
    return price_basis(sub, priced.items, prices, priced.user.country_code, purchase=purchase)


def price_basis(
    sub: Subscription,
    items: Iterable[LineItem],
    vm_prices: Mapping[int, VmPrice],
    country_code: str | None,
    *,
    purchase: bool,
) -> PriceBasis:
    """`price_in_force` from what it reads: each VPS item's VM price by line item id, and the
    country of the subscription's user (for a caller that read them already)."""
    recurring: list[Money] = []
    setup: list[Money] = []
    interval: Interval | None = None
    for item in items:
        if item.subscription_type is SubscriptionType.VPS:
            price = vm_prices[item.id]
            recurring.append(price.list_price)
            interval = interval or price.interval
        else:
            recurring.append(Money(parse_list_currency(sub.currency), item.amount))
        if purchase:
            setup.append(Money(parse_list_currency(sub.currency), item.setup_amount))
    country = country_alpha3(country_code)
    return PriceBasis.of(interval or sub.interval, recurring, setup, country)


async def price_in_force_or_none(
    uow: UnitOfWork, sub: Subscription, *, purchase: bool, read: PricedItems | None = None
) -> PriceBasis | None:
    """`price_in_force`, or None when it cannot be computed (a plan, pricing or VM is gone):
    a payment must still complete then, so the caller credits what was quoted."""
    try:
        return await price_in_force(uow, sub, purchase=purchase, read=read)
    except DomainError as err:
        log.warning("no price in force for subscription %s: %s", sub.id, err.message)
        return None


async def priced_items(
    uow: UnitOfWork, sub: Subscription, credit_in: str | None = None
) -> PricedItems:
    """What `sub` is priced from, read at once (with `credit_in`, the user's balance in that
    currency too); `UserNotFound` without its user."""
    priced = await uow.line_items.list_priced(sub.id, credit_in)
    return found(priced, UserNotFound("User not found"))


def fresh_rates(table: RateTable, now: datetime) -> dict[Currency, Decimal]:
    """The fresh BTC rates of a table, to be stored with a quote (its "own rates")."""
    out: dict[Currency, Decimal] = {}
    for currency in table.rates:
        try:
            out[currency] = table.btc_rate(currency, now).rate
        except DomainError:
            continue
    return out


def quote_metadata(
    basis: PriceBasis, table: RateTable, now: datetime, **fields: Any
) -> dict[str, Any]:
    """`fields` (the interval count …) plus the price basis and the rates the quote used."""
    return {
        **fields,
        PRICE_KEY: basis.to_json(),
        RATES_KEY: rates_json(fresh_rates(table, now)),
    }


async def expire_stale_quotes(
    uow: UnitOfWork,
    subscription_id: int,
    now: datetime,
    types: tuple[SubscriptionPaymentType, ...] = TIME_BUYING,
) -> list[SubscriptionPayment]:
    """Expire the subscription's pending payments of `types` (by default Purchase/Renewal,
    LNURL ones included).

    Called in the transaction that changes the price, after taking the subscription lock
    (lock order: subscription, then payments). Returns them as they were, for
    `cancel_quietly` after the commit.
    """
    return await uow.payments.expire_pending(PendingOf(subscription_id, types), now)


async def cancel_quietly(
    rails: PaymentRails | None, payments: Iterable[SubscriptionPayment]
) -> tuple[list[bytes], list[str]]:
    """Cancel each expired payment at its own provider; failures are logged, never raised.

    A payment that cannot be cancelled may still be paid: completion then credits it by
    value (D23), so a failure here costs nobody money.
    """
    done: list[bytes] = []
    problems: list[str] = []
    for payment in payments:
        if rails is None:
            problems.append(f"payment {payment.id.hex()}: no rails to cancel it at")
            continue
        try:
            await rails.cancel(payment)
            done.append(payment.id)
        except DomainError as err:
            log.warning("could not cancel stale payment %s: %s", payment.id.hex(), err.message)
            problems.append(f"cancelling payment {payment.id.hex()}: {err.message}")
    return done, problems


async def expire_user_quotes(
    uow: UnitOfWork, user_id: int, now: datetime
) -> list[SubscriptionPayment]:
    """`expire_stale_quotes` on every subscription of a user (their tax country changed),
    each under its subscription lock, in the same transaction as the change."""
    expired: list[SubscriptionPayment] = []
    offset = 0
    while True:
        page = await uow.subscriptions.list_by_user(user_id, 100, offset)
        for sub in page.items:
            await uow.subscriptions.get_for_update(sub.id)
            expired += await expire_stale_quotes(uow, sub.id, now)
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return expired


async def expire_quotes_on(
    uow: UnitOfWork,
    now: datetime,
    *,
    template_id: int | None = None,
    cost_plan_id: int | None = None,
    custom_pricing_id: int | None = None,
) -> list[SubscriptionPayment]:
    """`expire_stale_quotes` on every subscription a re-priced catalogue row prices (D23):
    the VMs on the template / on a template of the cost plan / on a custom template of the
    pricing, in the transaction that changes the price. Their upgrade quotes go too
    (`REPRICED`): an upgrade's charge is the target's price less the VM's own.

    One query finds only the subscriptions with a pending quote, so a plan used by
    thousands of VMs costs one lock and one update per subscription that has something to
    expire. Each subscription is locked before its payments (completion's lock order), in
    ascending id, so two such changes queue up instead of deadlocking.
    """
    on = PricedBy(
        template_id=template_id, cost_plan_id=cost_plan_id, custom_pricing_id=custom_pricing_id
    )
    return await _expire_on(uow, now, on, REPRICED)


async def expire_upgrades_on(
    uow: UnitOfWork, now: datetime, on: PricedBy
) -> list[SubscriptionPayment]:
    """Expire the pending upgrade quotes (only those) of the VMs `on` selects, in the
    transaction of a catalogue change that moves what their upgrades cost but not their own
    price (D23): a template's spec or region, or a custom pricing that standard VMs of its
    region grow into (`PricedBy.template_region_id`). Same locks and order as
    `expire_quotes_on`."""
    return await _expire_on(uow, now, on, UPGRADES)


async def _expire_on(
    uow: UnitOfWork,
    now: datetime,
    on: PricedBy,
    types: tuple[SubscriptionPaymentType, ...],
) -> list[SubscriptionPayment]:
    ids = await uow.subscriptions.ids_with_pending_on(now, types, on)
    expired: list[SubscriptionPayment] = []
    for subscription_id in ids:
        await uow.subscriptions.get_for_update(subscription_id)
        expired += await expire_stale_quotes(uow, subscription_id, now, types)
    return expired
