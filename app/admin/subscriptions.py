"""Admin subscription and line-item create/update (api.md §9.12); interval fields fixed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from app.admin.expiry_moved import end_quotes_of_old_expiry, expiry_moved, ranges_back_on
from app.billing.errors import CompanyNotFound, NotFound, SubscriptionNotFound, UserNotFound
from app.billing.order_locks import under_space_locks
from app.billing.price_in_force import REPRICED, cancel_quietly, expire_stale_quotes
from app.billing.rails import PaymentRails
from domain.enums import IntervalType, SubscriptionPaymentType
from domain.errors import DomainError, InvalidInput
from domain.expiry_edit import check_expiry_edit, expiry_edit_event
from domain.intervals import checked_interval
from domain.limits import check_expiry, check_price
from domain.model import Json, LineItem, Subscription, SubscriptionPayment
from domain.own_account import (
    LINE_ITEM_EDIT,
    SUBSCRIPTION_CREATE,
    SUBSCRIPTION_EDIT,
    owners,
    refuse_own,
    subscription_edit_moves_money,
)
from domain.patch import UNSET, Maybe, given
from domain.price_edit import price_edit_event, repriced, resupplied
from domain.switch_off import admin_edited, switched_off_now
from ports.clock import Clock
from ports.storage import UnitOfWorkFactory

#: a switch-off ends every kind of pending invoice, as a deletion does (D24)
EVERY_PAYMENT = tuple(SubscriptionPaymentType)


def _name(value: str) -> str:
    name = value.strip()
    if not name:
        raise InvalidInput("Subscription name cannot be empty")
    return name


class SupplyAllocated(DomainError):
    """What an IP-range line item sells changed after a block was given for it (422)."""


#: why a change of what an item sells is refused once it was given a range
_ALLOCATED = (
    "This line item was given an IP range already: what it sells (available_ip_space_id, "
    "prefix_size) cannot be changed, sell the other block as a new line item"
)


def _currency(value: str) -> str:
    currency = value.strip().upper()
    if not currency:
        raise InvalidInput("Currency cannot be empty")
    return currency


@attrs.frozen(kw_only=True)
class SubscriptionDraft:
    """A new subscription as the admin gives it: every field a `Subscription` of that name."""

    user_id: int
    company_id: int
    name: str
    is_active: bool
    currency: str
    setup_fee: int
    auto_renewal_enabled: bool
    description: str | None = None
    expires: datetime | None = None
    interval_amount: int = 1
    interval_type: IntervalType = IntervalType.MONTH
    external_id: str | None = None


async def create_subscription(
    uow_factory: UnitOfWorkFactory, clock: Clock, draft: SubscriptionDraft, *, admin_id: int
) -> Subscription:
    """A subscription with no line items and `is_setup` false; the user and the company
    must exist (404 otherwise, not a foreign-key failure).

    Nobody creates a subscription for their own user (`admin_id`, who asks, is the draft's
    `user_id`): refused (403, nothing created, `domain.own_account`). Every creation sets
    a price (the currency and setup fee are required) and may give paid time (`expires`),
    which one's own PATCH may not change; another admin must do it."""
    refuse_own(admin_id, {draft.user_id}, SUBSCRIPTION_CREATE)
    checked_interval(draft.interval_type, draft.interval_amount)
    check_price(draft.setup_fee, "setup_fee")
    check_expiry(draft.expires, clock.now())
    checked = attrs.evolve(draft, name=_name(draft.name), currency=_currency(draft.currency))
    # the draft's fields are the subscription's own, by name
    sub = Subscription(
        id=0, created=clock.now(), is_setup=False, **attrs.asdict(checked, recurse=False)
    )
    async with uow_factory() as uow:
        if await uow.users.get(draft.user_id) is None:
            raise UserNotFound("User not found")
        if await uow.companies.get(draft.company_id) is None:
            raise CompanyNotFound("Company not found")
        stored, _ = await uow.subscriptions.add_with_line_items(sub, [])
        await uow.commit()
    return stored


@attrs.frozen(kw_only=True)
class SubscriptionPatch:
    """UNSET fields are unchanged; `expires` and `external_id` may be cleared with None."""

    name: Maybe[str] = UNSET
    description: Maybe[str | None] = UNSET
    expires: Maybe[datetime | None] = UNSET
    is_active: Maybe[bool] = UNSET
    currency: Maybe[str] = UNSET
    setup_fee: Maybe[int] = UNSET
    auto_renewal_enabled: Maybe[bool] = UNSET
    external_id: Maybe[str | None] = UNSET


async def update_subscription(
    uow_factory: UnitOfWorkFactory,
    subscription_id: int,
    patch: SubscriptionPatch,
    *,
    clock: Clock,
    rails: PaymentRails | None,
    admin_id: int,
) -> Subscription:
    """Apply the given fields on the row-locked subscription (interval fields stay).

    A new currency re-prices the line items billed in it: pending renewal quotes are expired
    in the same transaction and cancelled at their provider after it (D23). A new `expires`
    ends, the same way, the pending upgrade quotes (priced up to the old expiry, D7) and any
    renewal invoice an automatic renewal claimed for the old period
    (`end_quotes_of_old_expiry`); other renewal quotes stay payable (they buy their
    intervals from the expiry found when they complete).

    `is_active` false on an active subscription switches it off (`domain.switch_off`): it
    is never renewed again, and its paid time runs out and ends as an unpaid one's does
    (stopped at its expiry, deleted after its grace period). Every pending invoice of it
    (renewals, LNURL and upgrade ones) is expired in the same transaction and cancelled at
    its rail after it, as deleting ends them (D24); a Purchase or Renewal paid anyway
    becomes account credit (`app.billing.completion`).
    `is_active` true switches it on again. An unchanged `false` (the admin UI sends every
    field) switches nothing off: a cancelled subscription keeps its own rules.

    A new `expires` earlier than now, or none on a subscription that is set up, is refused
    (422, nothing changed); any other change of it is written to its VM's history with
    `admin_id`, in the same transaction (`domain.expiry_edit`). Nobody moves their own
    subscription's expiry or changes its setup fee or currency (its items' prices are read
    in the new currency, unconverted): that is refused (403, nothing changed), judged on the
    locked row against `admin_id` (who asks: required, so no caller skips the check;
    `domain.own_account`); `is_active` and `auto_renewal_enabled` move no money and stay
    free.

    A new `expires` in the future on a subscription that runs (active, or switched off and
    winding down) turns its IP ranges ended at the lapse back on, in the same transaction
    and under the IP spaces' locks, as a late renewal's booking does; a range whose block
    someone else holds now gets a new free block of the size sold, and with none free the
    edit is refused (422, nothing changed) (`expiry_moved.ranges_back_on`).
    """
    now = clock.now()  # read once (D5): the checks, the history entry and the quotes agree
    changes = given(patch)
    if "name" in changes:
        changes["name"] = _name(changes["name"])
    if "setup_fee" in changes:
        check_price(changes["setup_fee"], "setup_fee")
    if "currency" in changes:
        changes["currency"] = _currency(changes["currency"])
    if "expires" in changes:
        check_expiry(changes["expires"], now)
    # run again with the IP spaces' locks when ranges to give back need them
    updated, expired = await under_space_locks(
        frozenset(),
        lambda spaces: _update_locked(uow_factory, subscription_id, changes, now, admin_id, spaces),
    )
    await cancel_quietly(rails, expired)
    return updated


async def _update_locked(
    uow_factory: UnitOfWorkFactory,
    subscription_id: int,
    changes: dict[str, Any],
    now: datetime,
    admin_id: int,
    spaces: frozenset[int],
) -> tuple[Subscription, list[SubscriptionPayment]]:
    """`update_subscription`'s transaction, holding the IP spaces `spaces`' locks after the
    subscription's; `SpacesToLock` when the IP ranges it gives back need others."""
    expired: list[SubscriptionPayment] = []
    async with uow_factory() as uow:
        sub = await uow.subscriptions.get_for_update(subscription_id)
        for space_id in sorted(spaces):  # lock order: the subscription, then IP spaces
            await uow.ip_spaces.lock(space_id)
        if sub is None:
            raise SubscriptionNotFound("Subscription not found")
        # the one deliberate exception to the state law (domain.lifecycle): this is the
        # operator's audited raw edit of the record (api.md §9.12), which may un-set `expires`
        # or shorten it, as the reference allows; every use case goes through the law
        updated = admin_edited(sub, attrs.evolve(sub, **changes))
        moves_money = subscription_edit_moves_money(sub, updated)
        vm = await uow.vms.get_by_subscription(sub.id) if moves_money else None
        if moves_money:
            # judged again on the locked row (the binding's check read it before the lock):
            # a rival's change committed in between is not undone by one's own old value
            refuse_own(admin_id, owners(sub, vm), SUBSCRIPTION_EDIT)
        check_expiry_edit(sub, updated.expires, now)  # 422: past, or none once paid
        if updated.expires != sub.expires and vm is not None:
            # who moved the paid time, committed with the move (a VM's history, never lost)
            edit = expiry_edit_event(vm.id, sub.expires, updated.expires, now, admin_id)
            await uow.vm_history.add(edit)
        await uow.subscriptions.update(updated)
        # paid time given again: its lapse-ended IP ranges back on (422 when impossible)
        await ranges_back_on(uow, sub, updated, now, spaces)
        if switched_off_now(sub, updated):
            expired = await expire_stale_quotes(uow, sub.id, now, EVERY_PAYMENT)
        else:
            if updated.currency != sub.currency:
                expired = await expire_stale_quotes(uow, sub.id, now)
            if expiry_moved(sub.expires, updated.expires):
                expired += await end_quotes_of_old_expiry(uow, sub, now)
        await uow.commit()
    return updated, expired


@attrs.frozen(kw_only=True)
class LineItemPatch:
    """UNSET fields are unchanged (`subscription_type` is not updatable, api.md §9.12)."""

    name: Maybe[str] = UNSET
    description: Maybe[str | None] = UNSET
    amount: Maybe[int] = UNSET
    setup_amount: Maybe[int] = UNSET
    configuration: Maybe[Json] = UNSET


async def update_line_item(
    uow_factory: UnitOfWorkFactory,
    line_item_id: int,
    patch: LineItemPatch,
    *,
    clock: Clock,
    rails: PaymentRails | None,
    admin_id: int,
) -> LineItem:
    """Apply the given fields under the subscription's lock. Nobody changes their own
    subscription's price: refused (403, nothing changed), judged on the item read under the
    lock against `admin_id` (who asks: required, so no caller skips the check). A price
    change is one of `amount`, `setup_amount` or of what the item sells: the configuration's
    `available_ip_space_id` or `prefix_size`, the space and block size an IP-range item is
    given (`domain.price_edit.repriced`; a /24 order edited to a /22 buys a /22 at the /24's
    price). It is written, with `admin_id` and the old and new price (and supply), to the
    history of the subscription's VM (if it has one; an IP-range subscription has none, the
    admin audit trail records the request) in the same transaction (`domain.price_edit`).

    What an item sells cannot be changed once it was given a range (any on record, active
    or ended): refused (422, nothing changed). The block given stays what it is (a booking
    never resizes it) and an ended one of the current lapse comes back on at the next
    payment, so the record would say /22 while the customer holds a /24; another block is
    sold as a new line item. Judged on the ranges read under the lock, which every booking
    giving a range holds.

    The item's subscription is looked up in a read of its own, before the transaction: the
    transaction's first read is then the lock, and the item read after it is the latest
    committed one (a read before the lock would fix MariaDB's REPEATABLE READ snapshot
    there, and a rival's edit committed while this one waited would be read as not made,
    then overwritten).

    A price change (a new `amount`, `setup_amount` or supply) is a new price: the
    subscription's pending purchase and renewal quotes (LNURL ones included) are expired in
    the same transaction and cancelled at their provider after it, so nobody buys time, or
    a block, at the old price (D23). A new `amount` expires
    its pending upgrade quotes too: whether an upgrade may move the subscription to monthly
    billing depends on the other items' amounts (`app.billing.upgrades`), so one quoted
    before is not left payable; one paid anyway is judged again when booked and becomes
    credit if it can no longer be made.
    """
    changes = given(patch)
    if "name" in changes:
        changes["name"] = str(changes["name"]).strip()
        if not changes["name"]:
            raise InvalidInput("Line item name cannot be empty")
    for name in ("amount", "setup_amount"):
        if name in changes:
            check_price(changes[name], name)
    now = clock.now()  # read once (D5): the history entry and the expired quotes agree
    expired: list[SubscriptionPayment] = []
    missing = NotFound("Subscription line item not found")
    async with uow_factory() as uow:
        found = await uow.line_items.get(line_item_id)
    if found is None:
        raise missing
    async with uow_factory() as uow:
        sub = await uow.subscriptions.get_for_update(found.subscription_id)  # lock: sub first
        item = await uow.line_items.get(line_item_id)
        if sub is None or item is None:  # deleted meanwhile
            raise missing
        updated = attrs.evolve(item, **changes)
        vm = await uow.vms.get_by_subscription(sub.id) if repriced(item, updated) else None
        if repriced(item, updated):
            # judged again on the item read under the lock: see `update_subscription`
            refuse_own(admin_id, owners(sub, vm), LINE_ITEM_EDIT)
        if resupplied(item, updated) and await uow.ip_range_subscriptions.list_by_line_item(
            item.id
        ):
            raise SupplyAllocated(_ALLOCATED)
        await uow.line_items.update(updated)
        if vm is not None:
            # who changed the price, from what to what, committed with the change
            edit = price_edit_event(vm.id, item, updated, sub.currency, now, admin_id)
            await uow.vm_history.add(edit)
        if updated.amount != item.amount:
            expired = await expire_stale_quotes(uow, item.subscription_id, now, REPRICED)
        elif repriced(item, updated):  # the setup fee, or what the item sells
            expired = await expire_stale_quotes(uow, item.subscription_id, now)
        await uow.commit()
    await cancel_quietly(rails, expired)
    return updated
