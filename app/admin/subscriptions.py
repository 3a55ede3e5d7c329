"""Admin subscription and line-item create/update (api.md §9.12); interval fields fixed."""

from __future__ import annotations

from datetime import datetime

import attrs

from app.admin.expiry_moved import end_quotes_of_old_expiry, expiry_moved
from app.billing.errors import CompanyNotFound, NotFound, SubscriptionNotFound, UserNotFound
from app.billing.price_in_force import REPRICED, cancel_quietly, expire_stale_quotes
from app.billing.rails import PaymentRails
from domain.enums import IntervalType, SubscriptionPaymentType
from domain.errors import InvalidInput
from domain.expiry_edit import check_expiry_edit, expiry_edit_event
from domain.intervals import checked_interval
from domain.limits import check_expiry, check_price
from domain.model import Json, LineItem, Subscription, SubscriptionPayment
from domain.patch import UNSET, Maybe, given
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
    uow_factory: UnitOfWorkFactory, clock: Clock, draft: SubscriptionDraft
) -> Subscription:
    """A subscription with no line items and `is_setup` false; the user and the company
    must exist (404 otherwise, not a foreign-key failure)."""
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
    admin_id: int | None = None,
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
    subscription's expiry or changes its setup fee: that is refused (403) where the use case
    is bound (`own_account.of_subscription_edit`).
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
    expired: list[SubscriptionPayment] = []
    async with uow_factory() as uow:
        sub = await uow.subscriptions.get_for_update(subscription_id)
        if sub is None:
            raise SubscriptionNotFound("Subscription not found")
        # the one deliberate exception to the state law (domain.lifecycle): this is the
        # operator's audited raw edit of the record (api.md §9.12), which may un-set `expires`
        # or shorten it, as the reference allows; every use case goes through the law
        updated = admin_edited(sub, attrs.evolve(sub, **changes))
        check_expiry_edit(sub, updated.expires, now)  # 422: past, or none once paid
        if updated.expires != sub.expires and (vm := await uow.vms.get_by_subscription(sub.id)):
            # who moved the paid time, committed with the move (a VM's history, never lost)
            edit = expiry_edit_event(vm.id, sub.expires, updated.expires, now, admin_id)
            await uow.vm_history.add(edit)
        await uow.subscriptions.update(updated)
        if switched_off_now(sub, updated):
            expired = await expire_stale_quotes(uow, sub.id, now, EVERY_PAYMENT)
        else:
            if updated.currency != sub.currency:
                expired = await expire_stale_quotes(uow, sub.id, now)
            if expiry_moved(sub.expires, updated.expires):
                expired += await end_quotes_of_old_expiry(uow, sub, now)
        await uow.commit()
    await cancel_quietly(rails, expired)
    return updated


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
    admin_id: int | None = None,
) -> LineItem:
    """Apply the given fields under the subscription's lock. `admin_id`, who asks, is read
    where the use case is bound: nobody changes their own subscription's price
    (`own_account.of_line_item_edit`).

    A new `amount` or `setup_amount` is a new price: the subscription's pending renewal
    quotes (LNURL ones included) are expired in the same transaction and cancelled at their
    provider after it, so nobody buys time at the old price (D23). A new `amount` expires
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
    expired: list[SubscriptionPayment] = []
    async with uow_factory() as uow:  # which subscription: read before its lock is taken
        found = await uow.line_items.get(line_item_id)
    if found is None:
        raise NotFound("Subscription line item not found")
    async with uow_factory() as uow:
        # the lock as the first statement: on MariaDB the first plain read fixes the
        # snapshot, so the item read after it holds what an upgrade booked meanwhile wrote
        # (its amount), which the whole-row write below keeps (review r5)
        await uow.subscriptions.get_for_update(found.subscription_id)
        item = await uow.line_items.get(line_item_id)
        if item is None:
            raise NotFound("Subscription line item not found")
        updated = attrs.evolve(item, **changes)
        await uow.line_items.update(updated)
        if updated.amount != item.amount:
            expired = await expire_stale_quotes(uow, item.subscription_id, clock.now(), REPRICED)
        elif updated.setup_amount != item.setup_amount:
            expired = await expire_stale_quotes(uow, item.subscription_id, clock.now())
        await uow.commit()
    await cancel_quietly(rails, expired)
    return updated
