"""Admin deletes of payment-method configs, subscriptions and line items (api.md §9.11, §9.12).

A subscription or line item is deleted only when nothing still hangs on it: no payment of the
subscription (a paid one is its history; an unpaid one could still settle, and a deleted row
would leave that money without a service), no VM (delete the VM instead: its own path ends its
invoices, D24) and no IP range sold through it. The reference refused only paid payments.
"""

from __future__ import annotations

from collections.abc import Collection

from app.admin.method_withdrawal import check_secret_kept, expire_pending_of
from app.admin.payment_methods import ConfigNotFound
from app.billing.errors import NotFound, SubscriptionNotFound
from app.billing.price_in_force import cancel_quietly
from app.billing.rails import PaymentRails
from domain.enums import PaymentMethod
from domain.errors import DomainError
from domain.model import LineItem
from domain.own_account import LINE_ITEM_DELETE, owners, refuse_own
from ports.clock import Clock
from ports.storage import UnitOfWork, UnitOfWorkFactory


class StillInUse(DomainError):
    """A delete refused because something still depends on the row (422)."""


async def delete_payment_method(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails | None,
    config_id: int,
    *,
    signed_by_settings: Collection[PaymentMethod] = (),
) -> None:
    """Delete the config; its company's pending payments of the method are expired in the
    same transaction and cancelled at their provider after it (`expire_pending_of`, D24).

    Refused (409, nothing changed) while the row holds its method's only webhook secret and
    payments of the method could still be paid (`check_secret_kept`): their webhooks would
    answer 503. `signed_by_settings`: the methods whose secret the settings file holds."""
    now = clock.now()
    async with uow_factory() as uow:
        config = await uow.payment_methods.get(config_id)
        if config is None:
            raise ConfigNotFound("Payment method config not found")
        await check_secret_kept(uow, config, now, signed_by_settings)
        expired = await expire_pending_of(uow, config, now)
        if not await uow.payment_methods.delete(config_id):
            raise ConfigNotFound("Payment method config not found")
        await uow.commit()
    await cancel_quietly(rails, expired)


async def _check_item_free(uow: UnitOfWork, item: LineItem, what: str) -> None:
    vm = await uow.vms.get_any_by_line_item(item.id)  # a deleted VM's too (D24)
    if vm is not None and vm.deleted:
        raise StillInUse(
            f"Cannot delete {what}: it billed VM {vm.id}, which is deleted; a late payment "
            "restores the VM through it"
        )
    if vm is not None:
        raise StillInUse(f"Cannot delete {what}: it bills VM {vm.id}. Delete the VM instead.")
    if await uow.ip_range_subscriptions.list_by_line_item(item.id):
        raise StillInUse(f"Cannot delete {what}: IP ranges were sold through it")


async def delete_subscription(uow_factory: UnitOfWorkFactory, subscription_id: int) -> None:
    async with uow_factory() as uow:
        sub = await uow.subscriptions.get_for_update(subscription_id)
        if sub is None:
            raise SubscriptionNotFound("Subscription not found")
        tally = await uow.payments.paid_tally(sub.id)
        paid, unpaid = len(tally.paid), tally.unpaid
        if paid:
            raise StillInUse(
                f"Cannot delete subscription: {paid} paid payments exist. "
                "Consider deactivating instead."
            )
        if unpaid:
            raise StillInUse(
                f"Cannot delete subscription: {unpaid} unpaid payments exist. "
                "Consider deactivating instead."
            )
        for item in await uow.line_items.list_by_subscription(sub.id):
            await _check_item_free(uow, item, "subscription")
        await uow.subscriptions.delete(sub.id)
        await uow.commit()


async def delete_line_item(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    line_item_id: int,
    *,
    admin_id: int,
) -> None:
    """Refused while the subscription has pending payments too: they were priced with this
    item, and D23 forbids buying time at a price no longer in force. Nobody deletes an item
    of their own subscription (`admin_id`, who asks: required, so no caller skips the
    check), whatever the item costs: what is left is cheaper to renew while the service may
    go on (ASN sponsoring and DNS hosting are provided by hand, and a VM's price is its
    plan's, not the item's `amount`). Refused (403, nothing changed), judged on the
    subscription locked here, before the in-use checks.

    The item's subscription is looked up in a read of its own, before the transaction: the
    transaction's first read is then the lock, and what it reads after it is the latest
    committed (a read before the lock would fix MariaDB's REPEATABLE READ snapshot there,
    and an invoice made while this waited for the lock would not be seen)."""
    async with uow_factory() as uow:
        owner = await uow.subscriptions.get_by_line_item(line_item_id)
    async with uow_factory() as uow:
        sub = None if owner is None else await uow.subscriptions.get_for_update(owner.id)
        item = await uow.line_items.get(line_item_id)
        if item is None or sub is None:
            raise NotFound("Subscription line item not found")
        refuse_own(
            admin_id, owners(sub, await uow.vms.get_by_subscription(sub.id)), LINE_ITEM_DELETE
        )
        await _check_item_free(uow, item, "line item")
        if await uow.payments.list_pending_for_subscription(sub.id, clock.now()):
            raise StillInUse("Cannot delete line item: its subscription has pending payments")
        await uow.line_items.delete(item.id)
        await uow.commit()
